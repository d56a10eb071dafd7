#!/bin/bash
# the long teacher recipe again, from the shipped teacher (teacher6, step 6,000), a new seed and a lower rate;
# resumes from runs/teacher7/last.pt
set -e
cd /work/main
.venv/bin/distillgrasp train teacher --init weights/teacher.safetensors --bf16 --device cpu \
  --data data/train2-d435 data/gpu-pr-d435 data/pr3-d435 --val data/dev-d435 --val-limit 60 \
  --out runs/teacher7 --steps 8000 --batch 6 --lr 2e-4 --warmup 200 --crop 256x192 --val-every 500 \
  --seed 3 --jpeg 0.5 --blur 0.2 --max-minutes 75 --quiet
echo "train done $(date)"
