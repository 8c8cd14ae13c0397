"""Figures: `shapft plot-frames` draws one frame per class from the source or a recording,
without pyplot (figures share one convention: a Figure on its own canvas)."""
import sys

import numpy as np
from matplotlib.image import imread

from gnuradio.shapft.core import recording
import shapft_testing


def test_plot_frames_from_a_recording_and_from_the_source(shapft, tmp_path):
    pyplot_before = "matplotlib.pyplot" in sys.modules   # shap, used by other tests, imports it
    rec = shapft_testing.tone_recording(2, [0, 10], seed=1)
    recording.write(tmp_path / "rec", rec, "test")
    code, out, err = shapft("plot-frames", "--data", tmp_path / "rec.sigmf-meta", "--out", tmp_path / "rec.png")
    assert code == 0, err
    code, out, err = shapft("plot-frames", "--snr", 10, "--out", tmp_path / "source.png")
    assert code == 0, err
    for name in ("rec.png", "source.png"):
        image = imread(tmp_path / name)
        assert image.shape[0] > 500 and image.shape[1] > 1000     # 6 rows of 2 classes
        assert np.std(image) > 0.05                                 # something was drawn
    assert pyplot_before or "matplotlib.pyplot" not in sys.modules


def test_plot_frames_refuses_a_missing_recording(shapft, tmp_path):
    code, out, err = shapft("plot-frames", "--data", tmp_path / "none.sigmf-meta", "--out", tmp_path / "x.png")
    assert code == 2 and "--data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
