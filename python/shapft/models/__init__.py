"""Classifier architectures. Every model takes float32 [B, 2, L] and returns logits [B, C]."""
from ..core.model_file import ARCHITECTURES
from ..core.radioml import CLASSES, FRAME_LENGTH
from .cnn_lstm import CnnLstm
from .transformer import transformer_compact, transformer_large


def build(arch, num_classes=len(CLASSES), frame_length=FRAME_LENGTH):
    """A freshly initialised model of a named architecture."""
    if arch == "cnn_lstm":
        return CnnLstm(num_classes)
    if arch == "transformer_compact":
        return transformer_compact(num_classes, frame_length)
    if arch == "transformer_large":
        return transformer_large(num_classes, frame_length)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())
