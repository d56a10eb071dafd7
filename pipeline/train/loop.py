"""The training loop: learning-rate schedule, DistributedDataParallel, validation, ``last.pt`` (resume), the
JSON log, and the best weights with their card."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from pipeline.errors import DistillGraspError
from pipeline.metrics import average, depth_metrics
from pipeline.models.common import count_parameters
from pipeline.train.augment import Augment
from pipeline.train.config import TrainConfig
from pipeline.train.data import FrameCache, add_teacher_targets
from pipeline.train.model import build_model
from pipeline.train.objectives import Objective
from pipeline.weights import save

logger = logging.getLogger(__name__)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over ``config.warmup`` steps, cosine decay to 0 at ``config.steps``."""
    warm = min(1.0, (step + 1) / max(config.warmup, 1))
    return config.lr * warm * 0.5 * (1 + math.cos(math.pi * min(step / max(config.steps, 1), 1.0)))


def score(model: torch.nn.Module, cache: FrameCache, batch: int = 4) -> dict:
    """Depth metrics of ``model`` on every whole frame of ``cache``: on the glass and over all pixels."""
    model.eval()
    trans, allpix = [], []
    with torch.inference_mode():
        for s in range(0, len(cache), batch):
            frames = cache.batch(torch.arange(s, min(s + batch, len(cache))))
            pred = model(frames.rgb, frames.depth)
            for p, g, m in zip(pred[:, 0].numpy(), frames.gt[:, 0].numpy(), frames.mask[:, 0].numpy()):
                trans.append(depth_metrics(p, g, m > 0))
                allpix.append(depth_metrics(p, g))
    model.train()
    return {"transparent": average(trans), "all": average(allpix)}


def init_chain(path: str, card: dict) -> dict:
    """What a fine-tuned network started from: the weights' path, recipe and step, and in turn what those
    started from (the card's own ``init``), so that every stage's command stays on record."""
    chain = {"weights": path, "recipe": card.get("recipe"), "step": card.get("step"), "commit": card.get("commit")}
    if card.get("init"):
        chain["init"] = card["init"]
    return {k: v for k, v in chain.items() if v is not None}


def _setup_distributed() -> tuple[int, int]:
    """This process's rank and the number of processes (under torchrun: gloo on CPU, nccl on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world


def _write_atomic(path: Path, obj) -> None:
    torch.save(obj, path.with_name(f".{path.name}.tmp"))
    os.replace(path.with_name(f".{path.name}.tmp"), path)


def train(config: TrainConfig) -> dict:
    """Run (or resume) the training ``config`` describes; returns the steps, the best validation RMSE and the
    parameter count."""
    config.validate()
    rank, world = _setup_distributed()
    main_proc = rank == 0
    progress = main_proc and not config.quiet
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
    data = FrameCache.load(config.data, config.frame_size, config.limit, progress=progress, jpeg=config.jpeg)
    val = FrameCache.load(config.val, config.frame_size, config.val_limit, progress=progress) if config.val else None
    model, init_card = build_model(config, announce=main_proc)
    objective = Objective.from_config(config, model)
    if config.distils:
        add_teacher_targets(data, config, out, write=main_proc, progress=progress)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)
    step, best = 0, math.inf
    ckpt = out / "last.pt"
    if ckpt.is_file() and not config.restart:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, best = state["step"], state["best"]
        torch.set_rng_state(state["torch_rng"])
        if main_proc:
            logger.info("resuming %s at step %d (best val RMSE %.4f)", out, step, best)
    gen = torch.Generator().manual_seed(config.seed * 1000 + rank + step * 7919)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    model.train()
    augment = Augment(blur=config.blur, glint=config.glint)
    bar = tqdm(total=config.steps, initial=step, desc=f"train {config.arch}", unit="step", disable=not progress)
    t0, losses = time.time(), []
    while step < config.steps:
        idx = torch.randint(0, len(data), (config.batch,), generator=gen)
        batch = data.batch(idx, gen, crop=config.crop_size, augment=augment)
        for g in opt.param_groups:
            g["lr"] = learning_rate(config, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            pred = net(batch.rgb, batch.depth).float()
        loss = objective(pred, batch, getattr(model, "last_gate_logits", None))
        if not torch.isfinite(loss):
            raise DistillGraspError(f"loss became {float(loss)} at step {step}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if (step % config.val_every == 0 or step == config.steps) and main_proc:
            record = {"step": step, "loss": float(np.mean(losses[-config.val_every:])),
                      "lr": learning_rate(config, step), "elapsed_s": round(time.time() - t0, 1)}
            if val is not None:
                record["val"] = score(model, val)
                rmse = record["val"]["transparent"]["rmse"] if record["val"]["transparent"] else math.inf
            else:
                rmse = record["loss"]
            improved = rmse < best
            best = min(best, rmse)
            record["best_val_rmse"] = best
            if improved:
                card = {"recipe": config.recipe, "data": {"train": list(config.data),
                                                          "val": list(config.val) if config.val else None},
                        "step": step, "val": record.get("val"), "train_fx": round(data.focal_px, 2)}
                if init_card is not None:
                    card["init"] = init_chain(config.init, init_card)
                save(model, out / "best.safetensors", card)
            _write_atomic(ckpt, {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                                 "torch_rng": torch.get_rng_state()})
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if not config.quiet:
                tqdm.write(json.dumps(record))
    bar.close()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return {"steps": step, "best_val_rmse": best, "params": count_parameters(model)}
