"""The training data: train/val/test windows of the cache, resident on the device or fed by a
DataLoader with workers (``data_mode``), for Lightning."""

from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config.trainer import TrainConfig
from ..serve.dataset import CachedERA5Dataset


def device_kind(cfg: TrainConfig) -> str:
    """``"cuda"`` where a GPU is there and the recipe does not ask for the CPU."""
    return "cuda" if torch.cuda.is_available() and cfg.trainer.devices != "cpu" else "cpu"


class ERA5DataModule(L.LightningDataModule):
    """Train/val/test windows; resident on the device or through a DataLoader."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        kw = dict(channels=list(cfg.channels) if cfg.channels else None,
                  seq_len=cfg.model.seq_len, lead=cfg.lead, return_mask=True)
        self.splits = {s: CachedERA5Dataset(cfg.data, split=s, **kw)
                       for s in ("train", "val", "test")}
        self.train_ds = self.splits["train"]
        if len(self.train_ds) == 0:
            raise ValueError(f"{cfg.data}: no training windows (period too short?)")
        self.mode = self._choose_mode()
        self._iterables: dict[str, object] = {}

    def _choose_mode(self) -> str:
        mode = self.cfg.trainer.data_mode
        if mode != "auto":
            return mode
        ds = self.train_ds
        frames = int(ds.starts.max() - ds.starts.min()) + ds.seq_len + ds.lead
        need = frames * int(np.prod(ds.frame_shape)) * 5  # float32 data + bool mask
        if device_kind(self.cfg) == "cuda":
            free, _ = torch.cuda.mem_get_info()
            return "resident" if need < 0.4 * free else "loader"
        import psutil

        return "resident" if need < 0.25 * psutil.virtual_memory().available else "loader"

    def climatology(self) -> torch.Tensor:
        """Per-point training-period mean, normalised, NaN -> 0: (C, H, W)."""
        ds = self.train_ds
        idx = np.unique(np.concatenate([ds.starts + k for k in range(ds.seq_len + ds.lead)]))
        s = np.zeros(ds.frame_shape)
        n = np.zeros_like(s)
        for a in range(0, idx.size, 256):
            block = ds.read_steps(idx[a:a + 256], normalize=False).astype(np.float64)
            ok = ~np.isnan(block)
            s += np.where(ok, block, 0).sum(0)
            n += ok.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
        norm = (mean - ds.stats["mean"][:, None, None]) / ds.stats["std"][:, None, None]
        return torch.tensor(np.nan_to_num(norm), dtype=torch.float32)

    def _iterable(self, split: str, train: bool):
        ds = self.splits[split]
        if len(ds) == 0:
            return []
        t = self.cfg.trainer
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        if self.mode == "resident":
            device = self.trainer.strategy.root_device if self.trainer else "cpu"
            dtype = torch.bfloat16 if (str(device).startswith("cuda")
                                       and "bf16" in str(self.trainer.precision)) \
                else torch.float32
            key = f"{split}-{rank}"
            if key not in self._iterables:
                self._iterables[key] = ds.to_device(
                    device, dtype=dtype, batch_size=t.batch_size, shuffle=train,
                    drop_last=train, seed=t.seed, rank=rank, world_size=world)
            return self._iterables[key]
        workers = (min(8, os.cpu_count() or 1) if t.num_workers == "auto"
                   else int(t.num_workers))
        sampler = None
        if world > 1:
            sampler = torch.utils.data.DistributedSampler(ds, num_replicas=world, rank=rank,
                                                          shuffle=train, seed=t.seed)
        return DataLoader(
            ds, batch_size=t.batch_size, shuffle=train and sampler is None, sampler=sampler,
            drop_last=train, num_workers=workers, collate_fn=CachedERA5Dataset.collate,
            pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
            worker_init_fn=CachedERA5Dataset.worker_init_fn if workers else None,
            prefetch_factor=4 if workers else None,
            generator=torch.Generator().manual_seed(t.seed))

    def train_dataloader(self):
        return self._iterable("train", True)

    def val_dataloader(self):
        return self._iterable("val", False)

    def test_dataloader(self):
        return self._iterable("test", False)

