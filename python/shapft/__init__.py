#
# Copyright 2026 gr-shapft authors
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""gr-shapft: attack and defend deep-learning modulation classifiers in GNU Radio.

Blocks: channel_model_source (RadioML-style frames through a dynamic channel),
fgsm_injector (adversarial perturbations), negative_point_mask (SHAP-FT's deletion)
and classifier_sink (TorchScript classification). The GNU-Radio-free library
(models, attacks, SHAP, training, data I/O) lives in the same package.
"""

from .shapft_python import read_frame_tags  # noqa: F401  (C++: lib/frame_tags.cc)
from .channel_model_source import channel_model_source  # noqa: E402,F401
from .classifier_sink import classifier_sink  # noqa: E402,F401
from .fgsm_injector import fgsm_injector  # noqa: E402,F401
from .negative_point_mask import negative_point_mask  # noqa: E402,F401
from . import model_file, negative_points, shipped  # noqa: E402,F401  (used by the GRC YAML)
from .demo import demo_report  # noqa: E402,F401
