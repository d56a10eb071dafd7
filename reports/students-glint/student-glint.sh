#!/bin/bash
# two students side by side from the shipped one, ground truth only, the same frames and steps: glass lit as real
# glass is (--glint 0.5) or not; one thread each; resume from runs/student-g{0,5}/last.pt
set -e
cd /work/main
S="--no-distill --init weights/student.safetensors --device cpu --data data/train2-d435 data/gpu-pr-d435 data/pr3-d435 \
  --val data/dev-d435 --val-limit 60 --steps 4000 --batch 8 --lr 3e-4 --warmup 50 --crop 160x128 --val-every 500 \
  --seed 0 --jpeg 0.5 --blur 0.2 --w-edges 4 --threads 1 --max-minutes 45 --quiet"
.venv/bin/distillgrasp train student $S --out runs/student-g0 > runs/student-g0.out 2>&1 &
.venv/bin/distillgrasp train student $S --glint 0.5 --out runs/student-g5 > runs/student-g5.out 2>&1 &
wait
echo "train done $(date)"
