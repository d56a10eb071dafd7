"""The training loop: learning-rate schedule, DistributedDataParallel, validation, ``last.pt`` (resume), the
JSON log, and the best weights with their card."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from pipeline.device import resolve_device
from pipeline.errors import DistillGraspError
from pipeline.metrics import average, depth_metrics
from pipeline.models.common import count_parameters
from pipeline.train.augment import Augment
from pipeline.train.config import TrainConfig
from pipeline.train.data import FrameCache, add_teacher_targets
from pipeline.train.model import build_model
from pipeline.train.objectives import Objective
from pipeline.weights import read_card, save

logger = logging.getLogger(__name__)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up over ``config.warmup`` steps, cosine decay to 0 at ``config.steps``."""
    warm = min(1.0, (step + 1) / max(config.warmup, 1))
    return config.lr * warm * 0.5 * (1 + math.cos(math.pi * min(step / max(config.steps, 1), 1.0)))


def score(model: torch.nn.Module, cache: FrameCache, batch: int = 4) -> dict:
    """Depth metrics of ``model`` on every whole frame of ``cache``: on the glass and over all pixels (in
    float32, also on a GPU)."""
    model.eval()
    trans, allpix = [], []
    with torch.inference_mode():
        for s in range(0, len(cache), batch):
            frames = cache.batch(torch.arange(s, min(s + batch, len(cache))))
            pred = model(frames.rgb, frames.depth).cpu()
            gt, mask = frames.gt.cpu(), frames.mask.cpu()
            for p, g, m in zip(pred[:, 0].numpy(), gt[:, 0].numpy(), mask[:, 0].numpy()):
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


def _setup_distributed(device: torch.device) -> tuple[int, int]:
    """This process's rank and the number of processes (under torchrun: nccl on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world


def batches(frames: int, batch: int, rank: int, world: int, seed: int, start: int):
    """This process's index batches from sample ``start`` on: every epoch a fresh permutation of the frames
    split between the processes (``DistributedSampler``), epochs chained so that a batch may span two. The
    position is kept in samples per process (``step * batch``), so a run resumes on any number of processes."""
    sampler = DistributedSampler(range(frames), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    per_epoch = len(sampler)
    epoch, skip = divmod(start, per_epoch)
    pending: list[int] = []
    while True:
        sampler.set_epoch(epoch)
        pending.extend(list(sampler)[skip:])
        skip, epoch = 0, epoch + 1
        while len(pending) >= batch:
            yield torch.tensor(pending[:batch])
            pending = pending[batch:]


def _write_atomic(path: Path, obj) -> None:
    torch.save(obj, path.with_name(f".{path.name}.tmp"))
    os.replace(path.with_name(f".{path.name}.tmp"), path)


def train(config: TrainConfig) -> dict:
    """Run (or resume) the training ``config`` describes; returns the steps, the best validation RMSE and the
    parameter count."""
    config.validate()
    device = resolve_device(config.device)
    rank, world = _setup_distributed(device)
    main_proc = rank == 0
    progress = main_proc and not config.quiet
    gpu = device.type == "cuda"
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(config.out)
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
    data = FrameCache.load(config.data, config.frame_size, config.limit, progress=progress, jpeg=config.jpeg)
    val = FrameCache.load(config.val, config.frame_size, config.val_limit, progress=progress) if config.val else None
    data.to(device)
    if val is not None:
        val.to(device)
    model, init_card = build_model(config, announce=main_proc)
    model.to(device, memory_format=torch.channels_last if gpu else torch.preserve_format)
    objective = Objective.from_config(config, model)
    teacher_cards = []
    if config.distils:
        add_teacher_targets(data, config, out, write=main_proc, progress=progress)
        teacher_cards = [init_chain(p, read_card(p)) for p in config.teacher]
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)
    step, best = 0, math.inf
    ckpt = out / "last.pt"
    if ckpt.is_file() and not config.restart:
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, best = state["step"], state["best"]
        torch.set_rng_state(state["torch_rng"].cpu())
        if main_proc:
            logger.info("resuming %s at step %d (best val RMSE %.4f)", out, step, best)
    gen = torch.Generator(device=device).manual_seed(config.seed * 1000 + rank + step * 7919)
    order = batches(len(data), config.batch, rank, world, config.seed, step * config.batch)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if gpu else None)
    model.train()
    augment = Augment(blur=config.blur, glint=config.glint)
    bar = tqdm(total=config.steps, initial=step, desc=f"train {config.arch}", unit="step", disable=not progress)
    t0, losses, stopped, val_s = time.time(), [], False, 0.0
    deadline = t0 + 60 * config.max_minutes if config.max_minutes else math.inf
    while step < config.steps:
        batch = data.batch(next(order), gen, crop=config.crop_size, augment=augment)
        for g in opt.param_groups:
            g["lr"] = learning_rate(config, step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16 or gpu):
            pred = net(batch.rgb, batch.depth).float()
        loss = objective(pred, batch, getattr(model, "last_gate_logits", None))
        if not torch.isfinite(loss):
            raise DistillGraspError(f"loss became {float(loss)} at step {step}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses = [*losses[-max(config.val_every, 50) + 1 :], loss.detach()]
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix(loss=f"{float(torch.stack(losses[-50:]).mean()):.4f}")
        if world == 1:
            stopped = time.time() > deadline
        elif step % 10 == 0:  # every process asks at the same steps, so that all stop at the same one
            stopped = _agree(time.time() > deadline, device)
        if (step % config.val_every == 0 or step == config.steps or stopped) and main_proc:
            t_val = time.time()
            record = {"step": step, "loss": float(torch.stack(losses[-config.val_every:]).mean()),
                      "lr": learning_rate(config, step), "elapsed_s": round(t_val - t0, 2),
                      "val_s": round(val_s, 2)}  # of elapsed_s, the seconds spent validating and saving
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
                if teacher_cards:
                    card["teachers"] = teacher_cards
                save(model, out / "best.safetensors", card)
            _write_atomic(ckpt, {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                                 "torch_rng": torch.get_rng_state()})
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if not config.quiet:
                tqdm.write(json.dumps(record))
            val_s += time.time() - t_val
        if stopped:
            break
    bar.close()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    result = {"steps": step, "best_val_rmse": best, "params": count_parameters(model), "device": str(device),
              "processes": world}
    if stopped and step < config.steps:
        result["stopped"] = f"--max-minutes {config.max_minutes} reached; rerun the command to go on"
    return result


def _agree(flag: bool, device: torch.device) -> bool:
    """Whether any process says ``flag`` (so that all of them stop at the same step)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
