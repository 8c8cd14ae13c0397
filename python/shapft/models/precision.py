"""Arithmetic precision a model runs in: fp32, or bfloat16 autocast where the hardware
computes it natively (docs/precision.md says when each is used and why).

Under bf16 autocast the matrix products and convolutions run in bfloat16; reductions,
losses and softmax stay in float32 (autocast's own policy, and every caller casts
logits to float32 before a loss). `auto` means bf16 where the device has native
bfloat16 arithmetic and fp32 elsewhere: emulated bf16 is slower than fp32.
"""
import contextlib
import functools
import warnings

import torch

PRECISIONS = ("fp32", "bf16", "auto")
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def native_bf16(device_type="cpu"):
    """Whether `device_type` computes bfloat16 natively (CPU: the avx512_bf16 or amx_bf16
    instructions; CUDA: compute capability 8.0 or newer)."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in _CPU_BF16_FLAGS)


def check(precision, name="precision"):
    """`precision` if it is one of PRECISIONS; else a ValueError naming the parameter."""
    if precision not in PRECISIONS:
        raise ValueError(f"{name}: {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


def resolve(precision, device_type="cpu"):
    """'fp32' or 'bf16': what `precision` means on this device. bf16 asked for on a
    device without native bf16 runs (emulated, slower) and warns once."""
    check(precision)
    if precision == "auto":
        return "bf16" if native_bf16(device_type) else "fp32"
    if precision == "bf16" and not native_bf16(device_type):
        _warn_emulated(device_type)
    return precision


@functools.lru_cache(maxsize=None)
def _warn_emulated(device_type):
    warnings.warn(f"precision bf16: this {device_type} has no native bfloat16 arithmetic; "
                  "bf16 is emulated and slower than fp32 here", RuntimeWarning, stacklevel=3)


def autocast(precision, device_type="cpu"):
    """A context that runs a model's forward pass in `precision` (resolved): bf16
    autocast, or nothing for fp32."""
    if resolve(precision, device_type) == "bf16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
