"""Image arrays as torch batches: normalisation, random crop + flip, seeded."""
from __future__ import annotations

import numpy as np
import torch

from ...datasets import ImageData


class DeviceData:
    """The train and validation images of an ``ImageData`` as uint8 NCHW
    tensors on one device, with the normalisation of the training images."""

    def __init__(self, data: ImageData, device: torch.device | str = "cpu", max_train: int | None = None):
        self.device = torch.device(device)
        x_train, y_train = data.x_train, data.y_train
        if max_train is not None and max_train < len(x_train):
            # a fixed random subset (not the first images: ImageFolder data is sorted by class)
            keep = np.sort(np.random.default_rng(0).permutation(len(x_train))[:max_train])
            x_train, y_train = x_train[keep], y_train[keep]
        self.x_train = _nchw(x_train, self.device)
        self.y_train = torch.from_numpy(np.array(y_train)).to(self.device)
        self.x_val = _nchw(data.x_val, self.device)
        self.y_val = torch.from_numpy(np.array(data.y_val)).to(self.device)
        mean, std = data.mean_std
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1)

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.float().div_(255.0) - self.mean) / self.std

    def train_batches(self, batch_size: int, generator: torch.Generator, augment: bool):
        """One epoch of shuffled, optionally augmented training batches. A
        trailing batch of one image is dropped (batch norm cannot train on it)."""
        n = len(self.x_train)
        order = torch.randperm(n, generator=generator).to(self.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2 and n > 1:
                break
            x = self.x_train[idx].float().div_(255.0)
            if augment:
                x = random_crop_flip(x, generator)
            yield (x - self.mean) / self.std, self.y_train[idx]

    def val_batches(self, batch_size: int):
        for start in range(0, len(self.x_val), batch_size):
            yield (self.normalize(self.x_val[start:start + batch_size]),
                   self.y_val[start:start + batch_size])


def sample_batch(data: ImageData, batch_size: int, seed: int,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random batch of normalised training images (no augmentation)."""
    n = len(data.x_train)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(batch_size, n), replace=False))
    mean, std = data.mean_std
    x = torch.from_numpy(data.x_train[idx].astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    x = (x - torch.from_numpy(mean).view(1, -1, 1, 1)) / torch.from_numpy(std).view(1, -1, 1, 1)
    return x.contiguous().to(device), torch.from_numpy(data.y_train[idx]).to(device)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop after zero padding, then random horizontal flip, per image
    (torchvision's RandomCrop(padding) + RandomHorizontalFlip), on a batch."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)                      # (b, h)
    cols = dx[:, None] + torch.arange(w, device=x.device)                      # (b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (b, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def _nchw(x: np.ndarray, device: torch.device) -> torch.Tensor:
    # a copy: the cached arrays are read-only and shared by every evaluation
    return torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous().to(device)
