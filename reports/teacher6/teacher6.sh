#!/bin/bash
# the long teacher recipe (docs/experiments.md, "A teacher trained longer"), on the frames this machine holds;
# resumes from runs/teacher6/last.pt
set -e
cd /work/main
.venv/bin/distillgrasp train teacher --init weights/teacher.safetensors --bf16 --device cpu \
  --data data/train2-d435 data/gpu-pr-d435 data/pr3-d435 --val data/dev-d435 --val-limit 60 \
  --out runs/teacher6 --steps 8000 --batch 6 --lr 3e-4 --warmup 200 --crop 256x192 --val-every 500 \
  --seed 2 --jpeg 0.5 --blur 0.2 --max-minutes 44 --quiet
echo "train done $(date)"
