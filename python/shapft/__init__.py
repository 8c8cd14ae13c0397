#
# Copyright 2026 gr-shapft authors
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-shapft: attack and defend deep-learning modulation classifiers in GNU Radio.

Blocks: channel_model_source (RadioML-style frames through a dynamic channel),
fgsm_injector (adversarial perturbations), negative_point_mask (SHAP-FT's deletion)
classifier_sink (TorchScript classification), attack_detector (scores frames as
attacked or clean), stream_framer (a radio's or recording's stream as model frames) and
sigmf_source (plays SigMF recordings with their annotations as tags). They are imported on first use, so
`import gnuradio.shapft` (and GNU Radio Companion sizing a block's ports) does not
load torch.

Rooms: blocks/ (GNU Radio blocks and their runtime), core/ (formats, units, data),
attacks/, models/, learn/ (training, SHAP, distillation, metrics), studies/
(generation, reproduction, reports, figures), cli/ (the `shapft` tool).
"""
import importlib

__version__ = "1.0.0.0"   # CMakeLists.txt VERSION_MAJOR.API.ABI.PATCH; a test keeps them equal

# name -> module that defines it (relative to this package)
_LAZY_MODULES = {"grc": ".blocks.grc"}
_LAZY = {
    "channel_model_source": ".blocks.channel_model_source",
    "fgsm_injector": ".blocks.fgsm_injector",
    "negative_point_mask": ".blocks.negative_point_mask",
    "classifier_sink": ".blocks.classifier_sink",
    "attack_detector": ".blocks.attack_detector",
    "stream_framer": ".blocks.stream_framer",
    "sigmf_source": ".blocks.sigmf_source",
    "read_frame_tags": ".shapft_python",
}

__all__ = sorted([*_LAZY, *_LAZY_MODULES])


def __getattr__(name):
    if name in _LAZY_MODULES:
        value = importlib.import_module(_LAZY_MODULES[name], __name__)
        globals()[name] = value
        return value
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY, *_LAZY_MODULES])
