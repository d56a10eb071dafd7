"""Train the teacher, or distil the student from it.

    distillgrasp train teacher --data DIR [DIR ...] --val DIR --out runs/teacher --steps N
    distillgrasp train student --teacher weights/teacher.safetensors --data DIR ... --out runs/student
    distillgrasp train student --no-distill ...            (the same student, supervised only)

Frames are loaded once at ``--size`` into memory; each step takes random ``--crop`` windows with flips and
colour jitter. Distillation is offline: the teacher completes every whole frame once (``--teacher-flip``: the
mean with its mirrored frame) and those maps, cached in ``OUT/teacher-targets.pt``, are cropped and mirrored
with the frames; the student learns from them and from the ground truth. Every ``--val-every`` steps the model
is scored on ``--val`` (transparent-pixel RMSE etc.), one JSON line is appended to ``OUT/log.jsonl``,
``OUT/last.pt`` is written (model, optimiser, step, random state) and, when the validation RMSE improves,
``OUT/best.safetensors`` with its card. A rerun with the same ``--out`` resumes from ``last.pt``. Under
``torchrun`` it trains with DistributedDataParallel (gloo on CPU, nccl on GPUs); every process draws different
batches, rank 0 validates and writes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from pipeline.cli import HelpFormatter, parse_size
from pipeline.data.dataset import resize_frame
from pipeline.data.readers import discover
from pipeline.errors import DistillGraspError
from pipeline.losses import DistillWeights, FeatureDistillation, distillation_loss, gate_loss, supervised_loss
from pipeline.metrics import MOVED_M, average, depth_metrics
from pipeline.models.common import count_parameters
from pipeline.weights import build, load, save


def _paste(rgb: torch.Tensor, mask: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """``FrameCache.batch``'s paste augmentation: rectangles (20-60% of each side) of the next crop's colour,
    outside the glass (``mask``) of both crops, in a ``share`` of the crops."""
    b, _, h, w = rgb.shape
    donor, dmask = rgb.roll(1, 0), mask.roll(1, 0)
    region = torch.zeros(b, 1, h, w, dtype=torch.bool)
    for i in torch.nonzero(torch.rand(b, generator=gen) < share).flatten().tolist():
        rh, rw = (int(s * (0.2 + 0.4 * float(torch.rand(1, generator=gen)))) for s in (h, w))
        y, x = (int(torch.randint(0, s - r + 1, (1,), generator=gen)) for s, r in ((h, rh), (w, rw)))
        region[i, :, y : y + rh, x : x + rw] = True
    region &= (mask < 0.5) & (dmask < 0.5)
    return torch.where(region, donor, rgb)


def binomial_blur(x: torch.Tensor) -> torch.Tensor:
    """Each channel of ``x`` (BxCxHxW) smoothed by the 3x3 binomial kernel, edges replicated."""
    k = torch.tensor([0.25, 0.5, 0.25], dtype=x.dtype)
    c = x.shape[1]
    kernel = (k[:, None] * k[None, :]).expand(c, 1, 3, 3).contiguous()
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)


def glint_glass(rgb: torch.Tensor, mask: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """``FrameCache.batch``'s glint augmentation: in a ``share`` of the crops the glass (``mask``) is lit as
    under a room's ceiling lights, which rendered glass rarely is: a veil of reflected light over it (0-12%
    towards white) and a bright highlight along the part of its outline that faces a random direction."""
    b = rgb.shape[0]
    soft = binomial_blur(binomial_blur(mask))
    rim = 4 * soft * (1 - soft)  # 1 on the outline, 0 inside and outside
    gy, gx = soft[..., 2:, 1:-1] - soft[..., :-2, 1:-1], soft[..., 1:-1, 2:] - soft[..., 1:-1, :-2]
    angle = 2 * torch.pi * torch.rand(b, 1, 1, 1, generator=gen)
    facing = F.pad(-(gx * torch.cos(angle) + gy * torch.sin(angle)), (1, 1, 1, 1))
    facing = (facing / facing.abs().amax((2, 3), keepdim=True).clamp_min(1e-6)).clamp_min(0)
    chosen = torch.rand(b, 1, 1, 1, generator=gen) < share
    veil = chosen * 0.12 * torch.rand(b, 1, 1, 1, generator=gen)
    shine = chosen * (0.15 + 0.35 * torch.rand(b, 1, 1, 1, generator=gen))
    light = (veil * soft + shine * rim * (0.3 + 0.7 * facing)).clamp(0, 1)
    return rgb + light * (1 - rgb)


@dataclass
class FrameCache:
    """All frames of some folders at one size, as tensors: rgb uint8 Nx3xHxW, depth/gt float16, mask bool."""

    rgb: torch.Tensor
    depth: torch.Tensor
    gt: torch.Tensor
    mask: torch.Tensor
    sources: list[str]
    teacher: torch.Tensor | None = None  # the teacher's depth per frame (float16), for distillation

    @classmethod
    def load(cls, folders: list[str], size: tuple[int, int], limit: int | None = None,
             progress: bool = True, jpeg: float = 0.0, labelled: bool = True) -> "FrameCache":
        """Load every frame once, resized to ``size``. ``jpeg``: share of frames whose colour image is
        re-encoded as JPEG at a random quality (40-95), as real captures are; fixed per frame index.
        ``labelled=False``: the frames count as captures without ground truth (any they carry is ignored;
        depth_gt 0, mask False) and teach only through the teacher."""
        loaders = [f for path in folders for f in discover(path)]
        items = [(f, i) for f in loaders for i in range(len(f))][:limit]
        if not items:
            raise DistillGraspError(f"no frames in {folders}")
        w, h = size
        rgb = torch.empty(len(items), 3, h, w, dtype=torch.uint8)
        depth = torch.empty(len(items), 1, h, w, dtype=torch.float16)
        gt = torch.empty_like(depth)
        mask = torch.empty(len(items), 1, h, w, dtype=torch.bool)
        for n, (folder, i) in enumerate(tqdm(items, desc="load frames", unit="frame", disable=not progress)):
            f = resize_frame(folder.load(i), w, h)
            if not labelled:
                f = replace(f, depth_gt=np.zeros_like(f.depth), mask=np.zeros(f.depth.shape, bool))
            elif f.depth_gt is None or f.mask is None:
                raise DistillGraspError(f"{f.name}: training needs ground truth and a transparent mask")
            colour = f.rgb
            if jpeg > 0:
                rng = np.random.default_rng([7, n])
                if rng.random() < jpeg:
                    ok, buf = cv2.imencode(".jpg", colour, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 96))])
                    colour = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else colour
            rgb[n] = torch.from_numpy(colour).permute(2, 0, 1)
            depth[n, 0] = torch.from_numpy(f.depth)
            gt[n, 0] = torch.from_numpy(f.depth_gt)
            mask[n, 0] = torch.from_numpy(f.mask)
        return cls(rgb, depth, gt, mask, [str(p) for p in folders])

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def __add__(self, other: "FrameCache") -> "FrameCache":
        if self.teacher is not None or other.teacher is not None:
            raise ValueError("join frame caches before the teacher's targets are computed")
        return FrameCache(*(torch.cat([a, b]) for a, b in zip((self.rgb, self.depth, self.gt, self.mask),
                                                               (other.rgb, other.depth, other.gt, other.mask))),
                          self.sources + other.sources)

    def mask_repairs(self, threshold: float = MOVED_M, trust: str = "repairs") -> None:
        """Prepare frames without ground truth for the teacher's terms.

        ``trust="repairs"``: glass is where the teacher supplied or moved the depth (no raw reading, or one
        more than ``threshold`` metres from the teacher's), weighted up like the true mask of labelled frames.
        ``trust="holes"``: the teacher is followed where the camera gave no reading (glass = the holes) and
        where it agrees with the raw depth; where it moved a valid reading by more than ``threshold`` (glass
        the camera saw through, or the teacher's own mistake: nothing tells them apart) the frame teaches
        nothing (target 0)."""
        unlabelled = ~(self.gt > 0).flatten(1).any(1)
        if self.teacher is None or not unlabelled.any():
            return
        raw, t = self.depth[unlabelled].float(), self.teacher[unlabelled].float()
        moved = (raw > 0) & ((t - raw).abs() > threshold)
        if trust == "holes":
            self.mask[unlabelled] = raw <= 0
            self.teacher[unlabelled] = torch.where(moved, torch.zeros_like(t), t).to(self.teacher.dtype)
        elif trust == "repairs":
            self.mask[unlabelled] = (raw <= 0) | moved
        else:
            raise ValueError(f"trust must be 'repairs' or 'holes', not {trust!r}")

    def batch(self, idx: torch.Tensor, crop: tuple[int, int] | None, gen: torch.Generator, augment: bool,
              blur: float = 0.0, paste: float = 0.0, milky: float = 0.0, glint: float = 0.0):
        """rgb, depth, gt, mask (and the teacher's depth when cached) for frames ``idx``: randomly cropped,
        mirrored and colour-jittered when ``augment``, and a ``blur`` share of them softened (defocus).

        ``paste``: in that share of the crops a random rectangle of the colour image is replaced by the same
        pixels of the next crop in the batch, outside the glass of both; depth and truth stay. The network
        sees colour that does not fit the geometry on surfaces whose depth is right, and learns to keep such
        depth: only glass, not any unfamiliar texture, calls for a correction.

        ``milky``: in that share of the crops the glass is blended 10-50% towards a light grey, as scratched,
        frosted or printed laboratory glass looks in real captures. ``glint``: in that share of the crops the
        glass gets a veil of reflected light and a bright partial rim (see ``glint_glass``)."""
        rgb = self.rgb[idx].float() / 255.0
        depth, gt, mask = self.depth[idx].float(), self.gt[idx].float(), self.mask[idx].float()
        maps = [depth, gt, mask] + ([self.teacher[idx].float()] if self.teacher is not None else [])
        if crop is not None:
            cw, ch = crop
            h, w = rgb.shape[-2:]
            y = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
            x = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
            rgb, *maps = (t[..., y : y + ch, x : x + cw] for t in (rgb, *maps))
        if augment:
            b = rgb.shape[0]
            flip = torch.rand(b, generator=gen) < 0.5
            rgb, *maps = (torch.where(flip.view(b, 1, 1, 1), t.flip(-1), t) for t in (rgb, *maps))
            if paste > 0 and b > 1:
                rgb = _paste(rgb, maps[2], paste, gen)
            if milky > 0:
                chosen = torch.rand(b, 1, 1, 1, generator=gen) < milky
                a = chosen * (0.1 + 0.4 * torch.rand(b, 1, 1, 1, generator=gen))
                grey = 0.7 + 0.3 * torch.rand(b, 1, 1, 1, generator=gen)
                rgb = rgb + a * maps[2] * (grey - rgb)
            if glint > 0:
                rgb = glint_glass(rgb, maps[2], glint, gen)
            gain = 1 + 0.25 * (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1)
            tint = 1 + 0.06 * (torch.rand(b, 3, 1, 1, generator=gen) * 2 - 1)
            gray = rgb.mean(1, keepdim=True)
            sat = 1 + 0.3 * (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1)
            rgb = ((gray + (rgb - gray) * sat) * gain * tint)
            rgb = rgb + 0.02 * torch.rand(b, 1, 1, 1, generator=gen) * torch.randn(rgb.shape, generator=gen)
            if blur > 0:
                soft = torch.rand(b, generator=gen) < blur
                rgb = torch.where(soft.view(b, 1, 1, 1), binomial_blur(rgb), rgb)
            rgb = rgb.clamp(0, 1)
        return (rgb, *maps)

    def predict(self, model: torch.nn.Module, flip: bool = False, batch: int = 4, progress: bool = True):
        """Cache ``model``'s depth for every whole frame (mean with the mirrored frame's when ``flip``)."""
        out = torch.empty_like(self.depth)
        model.eval()
        with torch.inference_mode():
            for s in tqdm(range(0, len(self), batch), desc="teacher targets", unit="batch", disable=not progress):
                rgb, depth = self.rgb[s : s + batch].float() / 255.0, self.depth[s : s + batch].float()
                pred = model(rgb, depth)
                if flip:
                    pred = 0.5 * (pred + model(rgb.flip(-1), depth.flip(-1)).flip(-1))
                out[s : s + batch] = pred.to(out.dtype)
        self.teacher = out


def validate(model: torch.nn.Module, cache: FrameCache, batch: int = 4) -> dict:
    model.eval()
    trans, allpix = [], []
    with torch.inference_mode():
        for s in range(0, len(cache), batch):
            idx = torch.arange(s, min(s + batch, len(cache)))
            rgb, depth, gt, mask = cache.batch(idx, None, torch.Generator(), augment=False)[:4]
            pred = model(rgb, depth)
            for p, g, m in zip(pred[:, 0].numpy(), gt[:, 0].numpy(), mask[:, 0].numpy()):
                trans.append(depth_metrics(p, g, m > 0))
                allpix.append(depth_metrics(p, g))
    model.train()
    return {"transparent": average(trans), "all": average(allpix)}


def _setup_distributed():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world


def init_chain(path: str, card: dict) -> dict:
    """What a fine-tuned network started from: the weights' path, recipe and step, and in turn what those
    started from (the card's own ``init``), so that every stage's command stays on record."""
    chain = {"weights": path, "recipe": card.get("recipe"), "step": card.get("step"), "commit": card.get("commit")}
    if card.get("init"):
        chain["init"] = card["init"]
    return {k: v for k, v in chain.items() if v is not None}


def train(args: argparse.Namespace) -> dict:
    rank, world = _setup_distributed()
    main_proc = rank == 0
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    if main_proc:
        out.mkdir(parents=True, exist_ok=True)
    size, crop = parse_size(args.size), (parse_size(args.crop) if args.crop else None)
    data = FrameCache.load(args.data, size, args.limit, progress=main_proc and not args.quiet, jpeg=args.jpeg)
    if args.unlabeled:
        if args.arch != "student" or args.no_distill:
            raise DistillGraspError("--unlabeled frames teach only through the teacher: distil a student "
                                    "(--teacher WEIGHTS, without --no-distill)")
        data = data + FrameCache.load(args.unlabeled, size, None, progress=main_proc and not args.quiet,
                                      jpeg=args.jpeg, labelled=False)
    val = FrameCache.load(args.val, size, args.val_limit, progress=main_proc and not args.quiet) if args.val else None

    config = json.loads(args.model_config) if args.model_config else None
    init_card = None
    if args.init:
        model, init_card = load(args.init)
        if init_card["arch"] != args.arch:
            raise DistillGraspError(f"--init {args.init} holds a {init_card['arch']}, not a {args.arch}")
        if config:
            # the same network with modules added (e.g. {"upsample": "convex"}): the new ones start fresh
            grown = build(args.arch, {**init_card.get("config", {}), **config})
            try:
                keys = grown.load_state_dict(model.state_dict(), strict=False)
            except RuntimeError as exc:
                raise DistillGraspError(f"--model-config {args.model_config} changes the shape of tensors of "
                                        f"--init {args.init}: only added modules start fresh ({exc})") from None
            if keys.unexpected_keys:
                raise DistillGraspError(f"--model-config {args.model_config} drops tensors of --init "
                                        f"{args.init}: {', '.join(keys.unexpected_keys[:5])}")
            model = grown
            if main_proc and keys.missing_keys:
                new = sorted({k.split('.')[0] for k in keys.missing_keys})
                print(f"--init {args.init}: new modules start from their initialisation: {', '.join(new)}")
    else:
        model = build(args.arch, config)
    w_gate = 0.0
    if getattr(model, "gate", None) is not None:
        w_gate = 0.05 if args.w_gate is None else args.w_gate
    elif args.w_gate is not None:
        raise DistillGraspError("--w-gate trains a student's trust gate: add --model-config '{\"gate\": true}'")
    features = None
    if args.w_feature and (args.arch != "student" or args.no_distill):
        raise DistillGraspError("--w-feature distils the student's features from a teacher: drop --no-distill")
    output_terms = any(w > 0 for w in (args.w_silog, args.w_ssim, args.w_edge, args.w_depth, args.w_bounded))
    if args.unlabeled and not output_terms:
        raise DistillGraspError("--unlabeled frames need the teacher's depth: give an output term a weight "
                                "(--w-depth, --w-silog, ...)")
    if args.arch == "student" and not args.no_distill:
        if not args.teacher:
            raise DistillGraspError("distilling the student needs --teacher WEIGHTS (or --no-distill)")
        teacher, _ = load(args.teacher)
        if args.w_feature:
            # online: the teacher runs on every training batch and its decoder features are the targets
            features = FeatureDistillation(model, teacher)
        if output_terms:
            # Offline distillation: the teacher sees each whole frame once (more context than a training
            # crop); its depth maps are cached beside the run and cropped and mirrored with the frames.
            targets = out / "teacher-targets.pt"
            key = {"teacher": str(args.teacher), "flip": args.teacher_flip, "data": args.data,
                   "size": args.size, "limit": args.limit, "frames": len(data)}
            if args.unlabeled:
                key["unlabeled"] = args.unlabeled
            cached = torch.load(targets, weights_only=False) if targets.is_file() else None
            if cached is not None and cached["key"] == key:
                data.teacher = cached["depth"]
            else:
                data.predict(teacher, flip=args.teacher_flip, progress=main_proc and not args.quiet)
                if main_proc:
                    torch.save({"key": key, "depth": data.teacher}, out / ".teacher-targets.tmp")
                    os.replace(out / ".teacher-targets.tmp", targets)
            data.mask_repairs(trust=args.unlabeled_trust)
    params = list(model.parameters()) + (list(features.parameters()) if features is not None else [])
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    step = 0
    best = math.inf
    ckpt = out / "last.pt"
    if ckpt.is_file() and not args.restart:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        if features is not None:
            if "features" not in state:
                raise DistillGraspError(f"{ckpt} was written without --w-feature; resume it the same way or "
                                        "use --restart")
            features.load_state_dict(state["features"])
        opt.load_state_dict(state["opt"])
        step, best = state["step"], state["best"]
        torch.set_rng_state(state["torch_rng"])
        if main_proc:
            print(f"resuming {out} at step {step} (best val RMSE {best:.4f})")
    gen = torch.Generator().manual_seed(args.seed * 1000 + rank + step * 7919)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    model.train()

    def lr_at(s: int) -> float:
        warm = min(1.0, (s + 1) / max(args.warmup, 1))
        return args.lr * warm * 0.5 * (1 + math.cos(math.pi * min(s / max(args.steps, 1), 1.0)))

    weights = DistillWeights(args.w_silog, args.w_ssim, args.w_edge, args.w_supervised, args.w_depth,
                             args.w_transparent, args.w_bounded, args.teacher_fills_gaps, args.w_edges)
    bar = tqdm(total=args.steps, initial=step, desc=f"train {args.arch}", unit="step",
               disable=not main_proc or args.quiet)
    t0, losses = time.time(), []
    while step < args.steps:
        idx = torch.randint(0, len(data), (args.batch,), generator=gen)
        rgb, depth, gt, mask, *t_pred = data.batch(idx, crop, gen, augment=True, blur=args.blur,
                                                    paste=args.paste, milky=args.milky, glint=args.glint)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            if features is not None:
                with torch.no_grad():
                    teacher(rgb, depth)  # its hooks keep the decoder features
            pred = net(rgb, depth).float()
        if t_pred:
            loss, _ = distillation_loss(pred, t_pred[0], gt, mask, weights)
        else:
            loss = supervised_loss(pred, gt, mask, edge_weight=weights.edges)
        if features is not None:
            loss = loss + args.w_feature * features.loss().float()
        if w_gate:
            loss = loss + w_gate * gate_loss(model.last_gate_logits, depth, gt)
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
        if step % args.val_every == 0 or step == args.steps:
            record = {"step": step, "loss": float(np.mean(losses[-args.val_every:])), "lr": lr_at(step),
                      "elapsed_s": round(time.time() - t0, 1)}
            if main_proc:
                if val is not None:
                    record["val"] = validate(model, val)
                    rmse = record["val"]["transparent"]["rmse"] if record["val"]["transparent"] else math.inf
                else:
                    rmse = record["loss"]
                improved = rmse < best
                best = min(best, rmse)
                record["best_val_rmse"] = best
                if improved:
                    card = {"recipe": "python -m pipeline.train " + " ".join(shlex.quote(a) for a in args.argv),
                            "data": {"train": args.data, "val": args.val}, "step": step,
                            "val": record.get("val")}
                    if init_card is not None:
                        card["init"] = init_chain(args.init, init_card)
                    save(model, out / "best.safetensors", card)
                state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                         "torch_rng": torch.get_rng_state()}
                if features is not None:
                    state["features"] = features.state_dict()
                torch.save(state, out / ".last.pt.tmp")
                os.replace(out / ".last.pt.tmp", ckpt)
                with open(out / "log.jsonl", "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                tqdm.write(json.dumps(record)) if not args.quiet else None
    bar.close()
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return {"steps": step, "best_val_rmse": best, "params": count_parameters(model)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="distillgrasp train", description=__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("arch", choices=("teacher", "student"))
    ap.add_argument("--data", nargs="+", required=True, help="training folders, any supported layout")
    ap.add_argument("--val", nargs="+", default=None, help="validation folders")
    ap.add_argument("--out", required=True, help="run folder (checkpoints, log, best weights)")
    ap.add_argument("--teacher", help="teacher weights for distillation (student only)")
    ap.add_argument("--no-distill", action="store_true", help="train the student on ground truth only")
    ap.add_argument("--unlabeled", nargs="+", default=None,
                    help="frames used without their ground truth (as real captures come): the student learns "
                         "them from the teacher alone")
    ap.add_argument("--unlabeled-trust", choices=("repairs", "holes"), default="repairs",
                    help="on --unlabeled frames, follow the teacher everywhere with glass = what it repaired "
                         "(repairs), or only in the camera's holes and where it agrees with the raw depth (holes)")
    ap.add_argument("--teacher-fills-gaps", action="store_true",
                    help="the teacher's terms apply only where there is no ground truth (--unlabeled frames, "
                         "holes in real ground truth); elsewhere the student learns from the truth alone")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--size", default="320x240", help="frames are resized to this first")
    ap.add_argument("--crop", default="160x128", help="random training crop (empty for whole frames)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training frames")
    ap.add_argument("--val-limit", type=int, default=None)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model-config", default=None, help="JSON of architecture keyword arguments")
    ap.add_argument("--w-silog", type=float, default=1.0)
    ap.add_argument("--w-ssim", type=float, default=1.0)
    ap.add_argument("--w-edge", type=float, default=1.0)
    ap.add_argument("--w-supervised", type=float, default=1.0)
    ap.add_argument("--w-depth", type=float, default=0.0,
                    help="weight of an absolute depth term against the teacher (the supervised loss's form)")
    ap.add_argument("--w-bounded", type=float, default=0.0,
                    help="weight of the teacher-bounded term: extra L1 to the truth on the pixels where the "
                         "student's error exceeds the teacher's")
    ap.add_argument("--w-feature", type=float, default=0.0,
                    help="weight of channel-wise feature distillation between the decoders (the teacher then "
                         "runs on every batch; with the output terms at 0 no teacher maps are cached)")
    ap.add_argument("--w-transparent", type=float, default=4.0,
                    help="weight of glass pixels relative to the rest in the distillation terms (1 = uniform)")
    ap.add_argument("--w-edges", type=float, default=1.0,
                    help="weight of pixels near depth discontinuities of the truth (outlines, rims, walls) in the "
                         "supervised term, relative to the rest (1 = no extra weight)")
    ap.add_argument("--w-gate", type=float, default=None,
                    help="weight of the trust gate's cross-entropy (students with a gate only; default 0.05)")
    ap.add_argument("--init", default=None, help="start from these weights (fine-tuning; same architecture)")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the forward passes (about 1.5x faster on CPUs with AVX512-BF16)")
    ap.add_argument("--teacher-flip", action="store_true",
                    help="distil towards the mean of the teacher's depth for the frame and for its mirror image")
    ap.add_argument("--jpeg", type=float, default=0.0,
                    help="share of training frames re-encoded as JPEG (quality 40-95), as real captures are")
    ap.add_argument("--blur", type=float, default=0.0, help="share of training crops slightly blurred")
    ap.add_argument("--paste", type=float, default=0.0,
                    help="share of training crops given a rectangle of another crop's colour outside the glass "
                         "(depth unchanged): unfamiliar colour alone does not call for a correction")
    ap.add_argument("--milky", type=float, default=0.0,
                    help="share of training crops whose glass is blended towards light grey (frosted, scratched)")
    ap.add_argument("--glint", type=float, default=0.0,
                    help="share of training crops whose glass gets a veil of reflected light and a bright partial "
                         "rim, as glass under room lights looks in real captures")
    ap.add_argument("--restart", action="store_true", help="ignore an existing last.pt")
    ap.add_argument("--quiet", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if args.steps < 1 or args.batch < 1 or args.val_every < 1:
            raise ValueError("--steps, --batch and --val-every must be positive")
        if args.w_edges < 1.0:
            raise ValueError(f"--w-edges must be at least 1 (1 = no extra weight), got {args.w_edges}")
        for name in ("jpeg", "blur", "paste", "milky", "glint"):
            if not 0.0 <= getattr(args, name) <= 1.0:
                raise ValueError(f"--{name} is a share of the training frames, 0-1; got {getattr(args, name)}")
        if args.w_gate is not None and args.w_gate < 0:
            raise ValueError(f"--w-gate must not be negative, got {args.w_gate}")
        result = train(args)
    except (DistillGraspError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
