"""Checkpoints written in the background, one at a time, each file whole or not at all.

A checkpoint of the default model is 840 MB (the averaged and the raw weights, AdamW's two
moments); written at every epoch's end from the training thread it took ~12 s on the 2-core
VM, 40% of ``make train``. :class:`BackgroundCheckpointIO` takes a point-in-time copy of the
checkpoint's tensors on the host in the training thread (a memory copy), writes it from one
worker thread to ``PATH.tmp`` and renames that to ``PATH``, so a crash leaves the previous
file whole. At most one write is in flight: the next save waits for it (memory: one copy).
Removals queue behind the write (the old best is deleted only once the new one is whole);
loading and the end of training wait for everything queued; an error in the writer is raised
at the next save or at the end.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning_utilities.core.apply_func import apply_to_collection


def _host_copy(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", copy=True)


class BackgroundCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` writing from a worker thread (local paths only)."""

    def __init__(self):
        super().__init__()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def _submit(self, fn, *args) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-writer")
        self._pending.append(self._pool.submit(fn, *args))

    def wait(self) -> None:
        """Waits for the queued writes and removals; raises the first error among them."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def _write(self, checkpoint: dict, path: str) -> None:
        tmp = f"{path}.tmp"
        super().save_checkpoint(checkpoint, tmp)
        os.replace(tmp, path)

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        self.wait()
        # the folder now: ModelCheckpoint links last.ckpt to this path right after the call
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._submit(self._write, apply_to_collection(checkpoint, torch.Tensor, _host_copy),
                     str(path))

    def remove_checkpoint(self, path) -> None:
        self._submit(super().remove_checkpoint, path)

    def load_checkpoint(self, path, *args, **kwargs):
        self.wait()
        return super().load_checkpoint(path, *args, **kwargs)

    def teardown(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
