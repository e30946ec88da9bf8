"""Latitude-weighted RMSE per channel, in physical units, for a model and two baselines.

Accumulates on the device without host synchronisation; ``compute()`` syncs once.
RMSE_c = sqrt( sum_{n,i,j} w_i m_nij (p_nij - y_nij)^2 / sum_{n,i,j} w_i m_nij ) * std_c,
with w_i = cos(lat_i) normalised to mean 1 and m the validity mask (NaN targets excluded).
Predictions and targets are in normalised units; ``std`` converts to physical units.
"""

from __future__ import annotations

import numpy as np
import torch

FORECASTS = ("model", "persistence", "climatology")


def latitude_weights(lat_deg: np.ndarray) -> np.ndarray:
    w = np.cos(np.deg2rad(np.asarray(lat_deg, dtype=np.float64)))
    return w / w.mean()


class SkillAccumulator:
    def __init__(self, lat_deg: np.ndarray, std: np.ndarray, device="cpu"):
        self.w = torch.tensor(latitude_weights(lat_deg), dtype=torch.float64,
                              device=device).view(1, 1, -1, 1)
        self.std = np.asarray(std, dtype=np.float64)
        c = self.std.size
        self.err = {k: torch.zeros(c, dtype=torch.float64, device=device) for k in FORECASTS}
        self.den = torch.zeros(c, dtype=torch.float64, device=device)

    def update(self, forecasts: dict[str, torch.Tensor], target: torch.Tensor,
               mask: torch.Tensor | None) -> None:
        """forecasts: name -> (B, C, H, W); target (B, C, H, W); mask bool or None."""
        m = (torch.ones_like(target, dtype=torch.float64) if mask is None
             else mask.to(torch.float64))
        wm = self.w.to(target.device) * m
        self.den += wm.sum(dim=(0, 2, 3))
        for k, f in forecasts.items():
            e = (f.double() - target.double()).square()
            self.err[k] += (wm * e).sum(dim=(0, 2, 3))

    def compute(self) -> dict[str, np.ndarray]:
        den = self.den.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return {k: np.sqrt(v.cpu().numpy() / den) * self.std for k, v in self.err.items()}
