"""Classifiers composed with SHAP-FT's deletion, as differentiable torch modules.

A SHAP-FT model classifies frames of 128 - m samples. Composed with the deletion of
its mask's positions it becomes a classifier of full 128-sample frames whose gradient
flows through the deletion: what an attacker who knows the defence differentiates
(the adaptive attack), and what the injector attacks when given a SHAP-FT model.
"""
import torch
from torch import nn

from ..core import masks
from . import device as model_device


class MaskedClassifier(nn.Module):
    def __init__(self, model: nn.Module, keep: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("keep", keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.index_select(2, self.keep))


def full_frame_classifier(loaded):
    """(module, input frame length) for a LoadedModel: the model itself, or, when it
    carries a mask, the model behind the deletion of the mask's positions."""
    if loaded.mask is None:
        return loaded.module, loaded.frame_length
    keep = torch.as_tensor(masks.keep_positions(loaded.mask), dtype=torch.long, device=model_device.of(loaded.module))
    return MaskedClassifier(loaded.module, keep).eval(), loaded.full_frame_length
