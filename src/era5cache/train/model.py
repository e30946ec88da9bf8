"""The RATransformer: each time step's field is one token; recursive attention; field out.

Pure PyTorch (no Lightning). Shapes: input ``x`` (batch, seq_len, channel, lat, lon)
normalised, NaN already filled; output (batch, channel, lat, lon) in the same units.

* Token embedding: the flattened frame (channel*lat*lon) -> ``d_model`` (linear), taken as
  the anomaly from ``input_offset`` (the per-point training climatology, normalised), so
  that the tokens carry what changes rather than the fixed pole-to-equator pattern.
* Positional encoding: a learned embedding of the token's position in the sequence plus a
  spherical-harmonic encoding of the frame: its area-weighted projection onto real spherical
  harmonics up to degree ``sh_degree`` (the basis is precomputed once as a buffer), mapped to
  ``d_model`` by a small MLP.
* ``num_layers`` pre-norm blocks: recursive attention (``recursion_depth`` sub-steps of
  ``scaled_dot_product_attention`` with shared projections, each followed by a linear +
  LayerNorm refiner and a residual; the sub-step outputs are mixed by softmax weights with a
  learnable temperature), then a GELU feed-forward block.
* Output: the last token -> the full field. With ``residual=True`` (default) the model predicts
  the increment over the last input frame, in units of the one-step-difference std
  (``increment_scale``, per channel), and the output projection starts at zero, so an untrained
  model is persistence.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config.model import ModelConfig


def real_spherical_harmonics(lat_deg: np.ndarray, lon_deg: np.ndarray, degree: int
                             ) -> np.ndarray:
    """Real, orthonormal spherical harmonics Y_lm, l <= degree, on a lat-lon grid.

    Returns (K, H, W) float64 with K = (degree + 1)**2; rows ordered (l, m) with
    m = -l..l. Associated Legendre functions by the standard stable recurrence.
    """
    theta = np.deg2rad(90.0 - np.asarray(lat_deg))[:, None]  # colatitude
    phi = np.deg2rad(np.asarray(lon_deg))[None, :]
    x, s = np.cos(theta), np.sin(theta)
    P = {}
    for m in range(degree + 1):
        # P_m^m = (-1)^m (2m-1)!! s^m
        pmm = np.ones_like(x) * ((-1) ** m) * np.prod(np.arange(1, 2 * m, 2)) * s**m
        P[(m, m)] = pmm
        if m + 1 <= degree:
            P[(m + 1, m)] = x * (2 * m + 1) * pmm
        for ell in range(m + 2, degree + 1):
            P[(ell, m)] = ((2 * ell - 1) * x * P[(ell - 1, m)]
                           - (ell + m - 1) * P[(ell - 2, m)]) / (ell - m)
    out = []
    for ell in range(degree + 1):
        for m in range(-ell, ell + 1):
            am = abs(m)
            norm = math.sqrt((2 * ell + 1) / (4 * math.pi)
                             * math.factorial(ell - am) / math.factorial(ell + am))
            if m == 0:
                y = norm * P[(ell, 0)] * np.ones_like(phi)
            elif m > 0:
                y = math.sqrt(2) * norm * P[(ell, am)] * np.cos(am * phi)
            else:
                y = math.sqrt(2) * norm * P[(ell, am)] * np.sin(am * phi)
            out.append(np.broadcast_to(y, (theta.shape[0], phi.shape[1])))
    return np.stack(out)


class SphericalHarmonicEncoding(nn.Module):
    """Frame -> d_model: area-weighted projection on a precomputed SH basis, then an MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        half = 80.0 / cfg.height  # cell centres of the 80S..80N grid (-79..79 for 80 rows)
        lat = np.linspace(-80.0 + half, 80.0 - half, cfg.height)
        lon = (np.arange(cfg.width) + 0.5) * 360.0 / cfg.width
        basis = real_spherical_harmonics(lat, lon, cfg.sh_degree)  # (K, H, W)
        w = np.cos(np.deg2rad(lat))[:, None] * np.ones((1, cfg.width))
        w = w / w.sum()
        self.register_buffer("basis", torch.tensor(basis * w, dtype=torch.float32)
                             .reshape(basis.shape[0], -1).T.contiguous(), persistent=False)
        k = basis.shape[0] * cfg.channels
        self.mlp = nn.Sequential(nn.Linear(k, cfg.d_model), nn.GELU(),
                                 nn.Linear(cfg.d_model, cfg.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, S, C, H, W) -> (B, S, d_model)."""
        b, s, c = x.shape[:3]
        coeff = x.reshape(b, s, c, -1) @ self.basis.to(x.dtype)  # (B, S, C, K)
        return self.mlp(coeff.reshape(b, s, -1))


class RecursiveAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.heads = cfg.num_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.refiners = nn.ModuleList(
            nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d)) for _ in range(cfg.recursion_depth))
        self.mix = nn.Parameter(torch.zeros(cfg.recursion_depth))
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.dropout = cfg.dropout

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (B, S, d) -> the update to add to h (B, S, d)."""
        b, s, d = h.shape
        outs = []
        z = h
        for refine in self.refiners:
            q, k, v = self.qkv(z).view(b, s, 3, self.heads, d // self.heads).permute(
                2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0)
            a = self.proj(a.transpose(1, 2).reshape(b, s, d))
            z = z + refine(a)
            outs.append(z - h)
        weights = torch.softmax(self.mix / self.log_temperature.exp(), dim=0)
        return torch.einsum("r,rbsd->bsd", weights, torch.stack(outs))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = RecursiveAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.dim_feedforward), nn.GELU(),
                                nn.Dropout(cfg.dropout),
                                nn.Linear(cfg.dim_feedforward, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h):
        h = h + self.drop(self.attn(self.norm1(h)))
        return h + self.drop(self.ff(self.norm2(h)))


class RATransformer(nn.Module):
    def __init__(self, cfg: ModelConfig, increment_scale: torch.Tensor | None = None,
                 input_offset: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        n = cfg.channels * cfg.height * cfg.width
        self.embed = nn.Linear(n, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(cfg.seq_len, cfg.d_model))
        self.sh = SphericalHarmonicEncoding(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, n)
        scale = torch.ones(cfg.channels) if increment_scale is None else increment_scale
        self.register_buffer("increment_scale", scale.float().view(-1, 1, 1))
        offset = (torch.zeros(cfg.channels, cfg.height, cfg.width) if input_offset is None
                  else input_offset.float())
        self.register_buffer("input_offset", offset)
        if cfg.residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        a = x - self.input_offset.to(x.dtype)  # anomalies: the tokens see what changes
        h = self.embed(a.reshape(b, s, -1)) + self.pos[:s] + self.sh(a)
        for blk in self.blocks:
            h = blk(h)
        out = self.head(self.norm(h[:, -1])).view(b, self.cfg.channels, self.cfg.height,
                                                   self.cfg.width)
        if self.cfg.residual:
            return x[:, -1] + out * self.increment_scale.to(out.dtype)
        return out


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over valid points, without host synchronisation.

    ``mask`` (bool, True = valid) has the shape of ``target``; ``weight`` (C, 1, 1) scales
    each channel's error before squaring. Written with ``torch.where`` and a valid-count
    division: boolean indexing (``pred[mask]``) would sort indices and sync with the host.
    """
    diff = pred.float() - target.float()
    if weight is not None:
        diff = diff * weight
    if mask is None:
        return diff.square().mean()
    sq = torch.where(mask, diff.square(), torch.zeros((), device=diff.device))
    return sq.sum() / mask.sum().clamp_min(1)
