"""The checkpoint ``era5cache train --resume`` continues from, checked before training starts:
a file that is not a PyTorch checkpoint, not one Lightning wrote, or one of another model is
a one-line :class:`~era5cache.errors.ConfigError` naming it, before Lightning says a word."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from ..errors import ConfigError


def check_resume(path: str | Path, module: torch.nn.Module) -> None:
    """:class:`ConfigError` unless ``path`` is a Lightning checkpoint whose ``state_dict``
    has ``module``'s parameters and buffers, with the same shapes. Reads the file memory-mapped
    (its tensors are not loaded)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint")
    unreadable = ConfigError(f"{path}: not a readable PyTorch checkpoint (truncated, empty, "
                             "or another kind of file)")
    if not zipfile.is_zipfile(path):  # torch.save writes a ZIP archive
        raise unreadable
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # a damaged archive: many kinds of exception
        raise unreadable from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt \
            or "pytorch-lightning_version" not in ckpt:
        raise ConfigError(f"{path}: a PyTorch file, but not a checkpoint of era5cache train "
                          "(no Lightning state_dict)")
    mismatch = _mismatch(ckpt["state_dict"], module.state_dict())
    if mismatch:
        raise ConfigError(f"{path}: a checkpoint of another model ({mismatch}); resume with "
                          "the model settings it was trained with")


def _mismatch(saved: dict, current: dict) -> str:
    """The first difference between two state dicts, in words ("" if none)."""
    missing = [k for k in current if k not in saved]
    if missing:
        return f"it lacks {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1
                                           else "")
    extra = [k for k in saved if k not in current]
    if extra:
        return f"it has {extra[0]}, which this model lacks"
    for k, v in current.items():
        if tuple(saved[k].shape) != tuple(v.shape):
            return f"{k} is {tuple(saved[k].shape)} there, {tuple(v.shape)} here"
    return ""
