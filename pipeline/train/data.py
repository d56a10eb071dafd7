"""Training frames in memory (``FrameCache``), the batches drawn from them, and the teacher's depth maps."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.data.dataset import resize_frame
from pipeline.data.readers import discover
from pipeline.errors import DistillGraspError
from pipeline.train.augment import Augment, random_crop, reencode_jpeg
from pipeline.train.batch import Batch
from pipeline.train.config import TrainConfig
from pipeline.weights import load


@dataclass
class FrameCache:
    """All frames of some folders at one size, as tensors: rgb uint8 Nx3xHxW, depth/gt float16, mask bool."""

    rgb: torch.Tensor
    depth: torch.Tensor
    gt: torch.Tensor
    mask: torch.Tensor
    sources: list[str]
    teacher: torch.Tensor | None = None  # the teacher's depth per frame (float16), for distillation
    focal_px: float = 0.0  # the frames' focal length in pixels at this size (median): the network's working scale

    @classmethod
    def load(cls, folders: list[str] | tuple[str, ...], size: tuple[int, int], limit: int | None = None,
             progress: bool = True, jpeg: float = 0.0) -> FrameCache:
        """Load every frame once, resized to ``size``; ``jpeg``: share of colour images re-encoded as JPEG
        (``reencode_jpeg``, fixed per frame index)."""
        loaders = [f for path in folders for f in discover(path)]
        items = [(f, i) for f in loaders for i in range(len(f))][:limit]
        if not items:
            raise DistillGraspError(f"no frames in {list(folders)}")
        w, h = size
        rgb = torch.empty(len(items), 3, h, w, dtype=torch.uint8)
        depth = torch.empty(len(items), 1, h, w, dtype=torch.float16)
        gt = torch.empty_like(depth)
        mask = torch.empty(len(items), 1, h, w, dtype=torch.bool)
        focal = []
        for n, (folder, i) in enumerate(tqdm(items, desc="load frames", unit="frame", disable=not progress)):
            f = resize_frame(folder.load(i), w, h)
            focal.append((f.intrinsics.fx * f.intrinsics.fy) ** 0.5)
            if f.depth_gt is None or f.mask is None:
                raise DistillGraspError(f"{f.name}: training needs ground truth and a transparent mask")
            rgb[n] = torch.from_numpy(reencode_jpeg(f.rgb, jpeg, n)).permute(2, 0, 1)
            depth[n, 0] = torch.from_numpy(f.depth)
            gt[n, 0] = torch.from_numpy(f.depth_gt)
            mask[n, 0] = torch.from_numpy(f.mask)
        return cls(rgb, depth, gt, mask, [str(p) for p in folders], focal_px=float(sorted(focal)[len(focal) // 2]))

    def __len__(self) -> int:
        return self.rgb.shape[0]

    @property
    def device(self) -> torch.device:
        return self.rgb.device

    def to(self, device: torch.device) -> FrameCache:
        """The frames moved to ``device`` once (on a GPU: no copy per step, crops and augmentation run there)."""
        for name in ("rgb", "depth", "gt", "mask", "teacher"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    def batch(self, idx: torch.Tensor, gen: torch.Generator | None = None, crop: tuple[int, int] | None = None,
              augment: Augment | None = None) -> Batch:
        """Frames ``idx`` as a ``Batch`` (with the teacher's depth when cached): one random ``crop`` window and
        ``augment`` applied when given, both drawing from ``gen``."""
        batch = Batch(rgb=self.rgb[idx].float() / 255.0, depth=self.depth[idx].float(), gt=self.gt[idx].float(),
                      mask=self.mask[idx].float(),
                      teacher=self.teacher[idx].float() if self.teacher is not None else None)
        if crop is not None:
            batch = random_crop(batch, crop, gen)
        if augment is not None:
            batch = augment(batch, gen)
        return batch

    def predict(self, models: list[torch.nn.Module], flip: bool = False, batch: int = 4,
                progress: bool = True) -> None:
        """Cache the mean depth of ``models`` for every whole frame (each also on the mirrored frame when
        ``flip``), computed where the frames are (on a GPU under bfloat16 autocast)."""
        out = torch.empty_like(self.depth)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        for model in models:
            model.eval()
        with torch.inference_mode(), autocast:
            for s in tqdm(range(0, len(self), batch), desc="teacher targets", unit="batch", disable=not progress):
                rgb, depth = self.rgb[s : s + batch].float() / 255.0, self.depth[s : s + batch].float()
                preds = [model(rgb, depth).float() for model in models]
                if flip:
                    preds += [model(rgb.flip(-1), depth.flip(-1)).float().flip(-1) for model in models]
                out[s : s + batch] = torch.stack(preds).mean(0).to(out.dtype)
        self.teacher = out


def add_teacher_targets(data: FrameCache, config: TrainConfig, out: Path, write: bool, progress: bool) -> None:
    """Offline distillation: the teacher completes every whole training frame once (more context than a crop)
    and its maps are cropped and mirrored with the frames; several teachers (an ensemble) give the mean of their
    maps. They are kept in ``OUT/teacher-targets.pt`` (written when ``write``) and reused while the teachers, the
    flip, the frames and their size stay the same."""
    path = out / "teacher-targets.pt"
    key = {"teacher": " ".join(config.teacher), "flip": config.teacher_flip, "data": list(config.data),
           "size": config.size, "limit": config.limit, "frames": len(data)}
    cached = torch.load(path, weights_only=True, map_location=data.device) if path.is_file() else None
    if cached is not None and cached["key"] == key:
        data.teacher = cached["depth"]
        return
    teachers = [load(weights)[0].to(data.device) for weights in config.teacher]
    data.predict(teachers, flip=config.teacher_flip, batch=32 if data.device.type == "cuda" else 4, progress=progress)
    if write:
        torch.save({"key": key, "depth": data.teacher.cpu()}, out / ".teacher-targets.tmp")
        os.replace(out / ".teacher-targets.tmp", path)
