"""The torch Dataset: resizing to the training size, augmentation that keeps geometry consistent."""

import numpy as np
import torch

from pipeline.data.dataset import AugmentConfig, DepthCompletionDataset


def test_real_frames_resized_to_training_size(shared_data):
    ds = DepthCompletionDataset([shared_data / "cleargrasp" / "real-val", shared_data / "clearpose"], size=(320, 240))
    assert len(ds) == 3
    item = ds[0]
    assert item["rgb"].shape == (3, 240, 320) and item["depth"].shape == (1, 240, 320)
    assert 0 <= item["rgb"].min() and item["rgb"].max() <= 1
    # nearest-neighbour resize keeps depth values that exist in the source (no blending across edges)
    frame = ds.sources[0].load(0)
    src_vals = set(np.unique(frame.depth_gt).tolist())
    assert set(np.unique(item["depth_gt"].numpy()).tolist()) <= src_vals
    assert item["K"][0, 0] == torch.tensor(921 * 320 / 1280)


def test_augmentation_flip_keeps_intrinsics_consistent(generated_d435):
    plain = DepthCompletionDataset(generated_d435, size=(160, 120))
    aug = DepthCompletionDataset(generated_d435, size=(160, 120),
                                 augment=AugmentConfig(hflip=1.0, depth_dropout=0.0, brightness=0, contrast=0,
                                                       saturation=0, hue_deg=0, blur=0, rgb_noise=0))
    a, b = plain[2], aug[2]
    assert torch.equal(b["depth_gt"], a["depth_gt"].flip(-1))
    assert torch.equal(b["mask"], a["mask"].flip(-1))
    assert b["K"][0, 2] == 160 - 1 - a["K"][0, 2]


def test_augmentation_is_deterministic_per_epoch(generated_d435):
    ds = DepthCompletionDataset(generated_d435, size=(160, 120), augment=AugmentConfig(), seed=5)
    x1 = ds[1]["rgb"]
    assert torch.equal(x1, ds[1]["rgb"])
    ds.set_epoch(1)
    assert not torch.equal(x1, ds[1]["rgb"])
