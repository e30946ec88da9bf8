"""The training data: train/val/test windows of the cache, resident on the device or fed by a
DataLoader with workers (``data_mode``), for Lightning."""

from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config.sizes import memory_bytes
from ..config.trainer import TrainConfig
from ..errors import ConfigError
from ..serve.dataset import CachedERA5Dataset
from ..serve.memory import available_memory
from ..serve.resident import resident_bytes, shard_windows
from ..serve.sampler import BlockShuffleSampler


def device_kind(cfg: TrainConfig) -> str:
    """``"cuda"`` where a GPU is there and the recipe does not ask for the CPU."""
    return "cuda" if torch.cuda.is_available() and cfg.trainer.devices != "cpu" else "cpu"


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def choose_data_mode(ds: CachedERA5Dataset, device: str, world: int,
                     dtype: torch.dtype) -> tuple[str, str]:
    """``auto``'s choice for the training split ``ds`` and why, in words.

    Resident when the split (frames in ``dtype`` and the NaN channels' mask) takes under 40%
    of the GPU's free memory (25% of the host's available memory, for every rank, on the
    CPU); resident_sharded when one rank's share does (DDP); else a DataLoader: full
    shuffle when the split's bytes in the file take under half the memory available to
    this process (the page cache holds it: every window a memory copy), blocks otherwise.
    """
    need = resident_bytes(ds, dtype=dtype)
    share = resident_bytes(ds, shard_windows(len(ds), 0, world), dtype) if world > 1 else need
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        room, where = 0.4 * free, f"40% of the GPU's {_gb(free)} free"
        if need < room:
            return "resident", f"the split's {_gb(need)} fits {where}"
        if world > 1 and share < room:
            return "resident_sharded", (f"one rank's share, {_gb(share)} of the split's "
                                        f"{_gb(need)}, fits {where}")
        why = f"the split's {_gb(need)} does not fit {where}"
    else:
        avail = available_memory()
        room, where = 0.25 * avail, f"25% of the {_gb(avail)} of memory available"
        if need * world < room:
            return "resident", f"the split's {_gb(need)} x {world} rank(s) fits {where}"
        if world > 1 and share * world < room:
            return "resident_sharded", (f"the ranks' shares, {_gb(share * world)} in all, "
                                        f"fit {where}")
        why = f"the split's {_gb(need)} x {world} rank(s) does not fit {where}"
    avail = available_memory()
    frames = int(ds.starts.max() - ds.starts.min()) + ds.seq_len + ds.lead
    on_disk = frames * ds.step_bytes
    if on_disk < 0.5 * avail:
        return "loader", (f"{why}; its {_gb(on_disk)} in the file fit half the "
                          f"{_gb(avail)} of memory available (page cache): full shuffle")
    return "blocks", (f"{why}; its {_gb(on_disk)} in the file do not fit half the "
                      f"{_gb(avail)} of memory available: BlockShuffleSampler reads it in "
                      "blocks")


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
        n, span = len(self.train_ds), cfg.model.seq_len + cfg.lead
        if n == 0:
            raise ConfigError(f"{cfg.data}: the training period holds no window of "
                              f"{span} consecutive steps (seq_len {cfg.model.seq_len} + lead "
                              f"{cfg.lead}); the cache or its training period is too short")
        if cfg.trainer.batch_size > n:  # the last partial batch is dropped: no step at all
            raise ConfigError(f"{cfg.data}: batch size {cfg.trainer.batch_size} is more than "
                              f"the training split's {n} windows, so no training step would "
                              f"run; use --batch-size {n} or less")
        self.mode, self.mode_reason = self._choose_mode()
        if self.mode == "blocks":  # windows' pages reclaimed before those read ahead
            for ds in self.splits.values():
                ds.cold_after_read = True
        self._iterables: dict[str, object] = {}

    def _choose_mode(self) -> tuple[str, str]:
        """(data mode, why): the recipe's, or under ``auto`` the first that fits of
        resident (the split on each device), resident_sharded (each rank's share), loader
        (the split fits the page cache: full shuffle) and blocks (it does not)."""
        mode = self.cfg.trainer.data_mode
        if mode != "auto":
            return mode, "set in the recipe"
        return choose_data_mode(self.train_ds, device_kind(self.cfg), self._world_size(),
                                self._frame_dtype(device_kind(self.cfg)))

    def _world_size(self) -> int:
        if self.trainer is not None:
            return self.trainer.world_size
        d, n = self.cfg.trainer.devices, torch.cuda.device_count()
        if isinstance(d, int):
            return d
        return max(1, n) if d == "auto" and device_kind(self.cfg) == "cuda" else 1

    def _bf16_batches(self, device: str) -> bool:
        """Batches in bfloat16: on CUDA under bf16 precision (autocast takes them)."""
        precision = self.cfg.trainer.precision
        return device == "cuda" and "bf16" in (precision if precision != "auto"
                                              else "bf16-mixed")

    def _frame_dtype(self, device: str) -> torch.dtype:
        """Resident frames: bfloat16 where batches are, the cache's own 16 bits where it
        has them (batches then cast to float32), else float32."""
        if self._bf16_batches(device):
            return torch.bfloat16
        return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(
            self.train_ds.info.storage, torch.float32)

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
        if self.mode in ("resident", "resident_sharded"):
            device = self.trainer.strategy.root_device if self.trainer else "cpu"
            kind = torch.device(device).type
            dtype = self._frame_dtype(kind)
            key = f"{split}-{rank}"
            if key not in self._iterables:
                self._iterables[key] = ds.to_device(
                    device, dtype=dtype, batch_size=t.batch_size, shuffle=train,
                    drop_last=train, seed=t.seed, rank=rank, world_size=world,
                    shard=self.mode == "resident_sharded",
                    batch_dtype=torch.bfloat16 if self._bf16_batches(kind) else torch.float32)
            return self._iterables[key]
        workers = (min(8, os.cpu_count() or 1) if t.num_workers == "auto"
                   else int(t.num_workers))
        sampler = None
        if self.mode == "blocks":
            sampler = BlockShuffleSampler(
                ds, shuffle=train, seed=t.seed, rank=rank, world_size=world,
                block_bytes=None if t.block_bytes is None else memory_bytes(t.block_bytes),
                pool_bytes=None if t.pool_bytes is None else memory_bytes(t.pool_bytes))
        elif world > 1:
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

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """A resident batch as it is (its tensors are on ``device`` already; Lightning's
        default walks the batch and calls ``.to`` on each tensor every step); a loader's
        batch moved by Lightning."""
        if self.mode in ("resident", "resident_sharded") and all(
                t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)
