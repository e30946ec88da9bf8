"""Model FLOP utilisation: the model's FLOPs per training sample and the card's peak.

``flops_per_sample`` counts with PyTorch's FLOP counter (``torch.utils.flop_counter``) one
forward and backward pass of the masked loss on a copy of the model on the ``meta`` device
(no memory, no compute, the model untouched): 0.45 GFLOP a sample for the default
RATransformer with 3 channels (0.18 forward). Only matrix products and attention count, as
usual for MFU.
"""

from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from the vendors' data sheets;
# the first name found in the device's name wins (GH200 before H200, PCIe/NVL before H100).
PEAK_BF16_TFLOPS = (("GH200", 989.0), ("H200", 989.0), ("H100 PCIe", 756.0),
                    ("H100 NVL", 835.0), ("H100", 989.0), ("H800", 989.0),
                    ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L4", 121.0),
                    ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0))


def flops_per_sample(model: torch.nn.Module, seq_len: int, frame: tuple[int, int, int],
                     weight: torch.Tensor | None = None) -> float:
    """FLOPs of one training sample (forward and backward of the masked loss) of ``model``
    fed ``seq_len`` frames of shape ``frame`` (channels, lat, lon)."""
    from .model import masked_mse

    meta = copy.deepcopy(model).to("meta").train()
    batch = 2
    x = torch.zeros(batch, seq_len, *frame, device="meta")
    y = torch.zeros(batch, *frame, device="meta")
    mask = torch.ones(batch, *frame, dtype=torch.bool, device="meta")
    w = None if weight is None else weight.to("meta")
    with FlopCounterMode(display=False) as counter:
        masked_mse(meta(x), y, mask, w).backward()
    return counter.get_total_flops() / batch


def peak_flops(device_name: str) -> float | None:
    """The card's dense bf16 peak in FLOP/s from its name, None when not in the table."""
    for name, tflops in PEAK_BF16_TFLOPS:
        if name in device_name:
            return tflops * 1e12
    return None
