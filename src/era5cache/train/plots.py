"""PNGs of a training run: loss curves and a prediction-vs-truth map (matplotlib, Agg)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch


def plot_run(out: Path, module, dm) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = out / "logs" / "metrics.csv"
    if metrics.exists():
        rows = list(csv.DictReader(metrics.open()))
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in (("train_loss_epoch", "train"), ("val_loss", "validation")):
            pts = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key)]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("masked MSE (loss units)")
        ax.set_yscale("log")
        ax.legend()
        ax.set_title("RATransformer loss")
        fig.tight_layout()
        fig.savefig(out / "loss.png", dpi=100)
        plt.close(fig)
    split = "val" if len(dm.splits["val"]) else "train"
    ds = dm.splits[split]
    x, y, mask = ds[len(ds) // 2][:3]
    module.eval()
    with torch.no_grad():
        pred = module(x[None].to(module.device).float())[0].float().cpu()
    c = int(np.argmax([ch == "t2m" for ch in ds.channels])) if "t2m" in ds.channels else 0
    std, mean = ds.stats["std"][c], ds.stats["mean"][c]
    t = y[c].numpy() * std + mean
    p = pred[c].numpy() * std + mean
    persist = x[-1, c].numpy() * std + mean
    invalid = ~mask[c].numpy()
    t[invalid] = p[invalid] = persist[invalid] = np.nan
    when = str(ds.window_times(len(ds) // 2)[-1])
    fig, axes = plt.subplots(2, 2, figsize=(11, 5.5))
    ext = (0, 360, -80, 80)
    lo, hi = np.nanpercentile(t, [1, 99])
    for ax, img, title in ((axes[0, 0], t, "truth"), (axes[0, 1], p, "prediction")):
        im = ax.imshow(img, origin="lower", extent=ext, vmin=lo, vmax=hi, cmap="RdYlBu_r")
        ax.set_title(f"{ds.channels[c]} {title}, {when}")
        fig.colorbar(im, ax=ax, shrink=0.8)
    err = max(np.nanpercentile(np.abs(persist - t), 99), 1e-6)
    for ax, img, title in ((axes[1, 0], p - t, "prediction - truth"),
                           (axes[1, 1], persist - t, "persistence - truth")):
        im = ax.imshow(img, origin="lower", extent=ext, vmin=-err, vmax=err, cmap="RdBu_r")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(out / "prediction.png", dpi=100)
    plt.close(fig)
