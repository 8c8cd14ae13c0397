"""The device a model runs on: cpu, cuda (cuda:N for the Nth GPU), mps (Apple), or auto:
cuda where a CUDA device is available, else cpu.

Everything that runs a model follows the model: tensors are made on the device its
parameters are on (`of`), and results come back to the CPU for numpy. Model files load
on the CPU and are then moved (core.model_file); models are written from the CPU.

Random draws stay on the CPU's generators and the noise is moved to the model: a seed
draws the same noise on every device, and CPU results are what they were before devices
could be chosen.
"""
import itertools

import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def resolve(name="auto", option="device"):
    """The torch.device `name` stands for on this machine. A name that is not one of
    DEVICES, or a device this machine lacks, is a one-line ValueError naming `option`
    (TypeError for a value that is not text)."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"{option}: must be one of {', '.join(DEVICES)}, got {name!r}")
    text = name.strip().lower()
    if text == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() \
            else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{option}: mps is not available (no Apple Metal device on this machine)")
        return torch.device("mps")
    kind, colon, index = text.partition(":")
    if kind != "cuda" or (colon and not index.isdigit()):
        raise ValueError(f"{option}: {name!r} is not one of {', '.join(DEVICES)}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    wanted = int(index) if colon else torch.cuda.current_device() if count else 0
    if wanted >= count:
        have = ("no CUDA device on this machine" if count == 0 else
                f"this machine has cuda:0 to cuda:{count - 1}" if count > 1 else "this machine has cuda:0 only")
        raise ValueError(f"{option}: {text} is not available ({have})")
    return torch.device("cuda", wanted)


def of(module):
    """The device `module` computes on: where its first parameter (or buffer) is; the CPU
    for a module without any (ONNX Runtime's, core.onnx_file) or a callable that is not a
    torch module."""
    if isinstance(module, torch.nn.Module):
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            return tensor.device
    return torch.device("cpu")


def fork_rng(device):
    """torch.random.fork_rng over the CPU's generator and, on a GPU, `device`'s own: the
    draws made inside (a stochastic model's) leave the caller's streams as they were."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device.index or 0], device_type=device.type)
