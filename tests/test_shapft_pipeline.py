"""The SHAP-FT stages after `shapft explain`: negative points and the mask
(masks.py, `shapft mask`), fine-tuning and its baselines (finetune.py,
`shapft finetune`), the defence evaluation with its adaptive attack (defense_eval.py)
and `shapft reproduce --preset micro` end to end, run once and then again to check
that the second run redoes nothing.

Hand-made Shapley values with known negative points drive the mask; the fine-tuned
models are checked against the library's fine-tuning on hand-deleted frames; the
adaptive attack against FGSM on masked.MaskedClassifier computed here.
"""
import json
import math
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from gnuradio.shapft import attacks
from gnuradio.shapft.core import budget, model_file, masks, recording
from gnuradio.shapft.studies import defense_eval, reproduce
from gnuradio.shapft.learn import metrics, explain, finetune
from gnuradio.shapft.models import masked
import shapft_testing
from gnuradio.shapft.core.radioml import CLASSES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)

# --- hand-made Shapley values with known negative points --------------------------------
#
# Three frames of 8 positions, I row then Q row. Frames 0 and 1 are misclassified
# (error-n), frame 2 is right. Per position, I + Q:
#   frame 0: [ 1, -1,  0,  1, -1,  0,  0,  0  ]   (position 1: I -3, Q +2; position 3: I -1, Q +2)
#   frame 1: [ 0,  0,  0,  0,  0, -2,  0,  0.5]
#   frame 2: [-5,  0,  0,  0,  3,  5, -4,  0  ]
# error frames (0, 1): [1, -1, 0, 1, -1, -2, 0, 0.5]  -> negative {1, 4, 5} (position 2 is 0: not negative)
# all frames:          [-4, -1, 0, 1, 2, 3, -4, 0.5]  -> negative {0, 1, 6}
# l1 (each frame / its total |value|: 10, 2.5, 17), all frames:
#   [0.1 - 5/17, -0.1, 0, 0.1, -0.1 + 3/17, -0.8 + 5/17, -4/17, 0.2] -> negative {0, 1, 5, 6}
HAND_VALUES = np.zeros((3, 2, 8))
HAND_VALUES[0, 0] = [1, -3, 0, -1, 0, 0, 0, 0]
HAND_VALUES[0, 1] = [0, 2, 0, 2, -1, 0, 0, 0]
HAND_VALUES[1, 0] = [0, 0, 0, 0, 0, -2, 0, 0]
HAND_VALUES[1, 1] = [0, 0, 0, 0, 0, 0, 0, 0.5]
HAND_VALUES[2, 0] = [-5, 0, 0, 0, 0, 0, -4, 0]
HAND_VALUES[2, 1] = [0, 0, 0, 0, 3, 5, 0, 0]
HAND_LABELS = np.array([1, 3, 5])
HAND_PREDICTED = np.array([2, 4, 5])
HAND_ERROR_SUMS = np.array([1, -1, 0, 1, -1, -2, 0, 0.5])
HAND_ALL_SUMS = np.array([-4, -1, 0, 1, 2, 3, -4, 0.5])
HAND_ALL_L1_SUMS = np.array([0.1 - 5 / 17, -0.1, 0, 0.1, -0.1 + 3 / 17, -0.8 + 5 / 17, -4 / 17, 0.2])
# the same pattern spread over a 128-sample frame (zeros elsewhere are never negative)
POSITIONS = np.array([3, 17, 30, 44, 60, 77, 101, 127])
ERROR_DROP = [17, 60, 77]            # POSITIONS[[1, 4, 5]]
ALL_DROP = [3, 17, 101]              # POSITIONS[[0, 1, 6]]
ALL_L1_DROP = [3, 17, 77, 101]       # POSITIONS[[0, 1, 5, 6]]
N_FT_PER_CLASS = 5                   # fine-tuning frames per class: 55 frames, 11 in val


def spread(values):
    out = np.zeros(values.shape[:-1] + (128,))
    out[..., POSITIONS] = values
    return out


def one_line_error(err, command):
    """The refusal is one line on stderr, `shapft COMMAND: error: ...`."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"shapft {command}: error: "), err
    return lines[0]


# --- negative_points: the frame rule, the sums, the negative positions --------------------

@pytest.mark.parametrize("eps, expected", [(0.0, "all"), (0.025, "all"), (0.05, "all"),
                                           (budget.psr_db_to_eps(budget.eps_to_psr_db(0.05)), "all"),
                                           (0.0501, "error"), (0.075, "error"), (0.1, "error")])
def test_auto_frame_rule_is_all_frames_up_to_eps_005_then_error_n(eps, expected):
    assert masks.frame_rule("auto", eps) == expected
    # explicit rules are kept whatever the budget
    assert masks.frame_rule("error", eps) == "error"
    assert masks.frame_rule("all", eps) == "all"


def test_unknown_frame_rule_and_normalisation_are_refused():
    with pytest.raises(ValueError, match="frame rule 'some' is not one of auto, error, all"):
        masks.frame_rule("some", 0.1)
    with pytest.raises(ValueError, match="normalisation 'l2' is not one of none, l1"):
        masks.summed_shapley(HAND_VALUES, [True] * 3, "l2")


def test_summed_shapley_sums_i_and_q_over_the_selected_frames():
    np.testing.assert_allclose(masks.summed_shapley(HAND_VALUES, [True, True, False]),
                               HAND_ERROR_SUMS, atol=1e-12)
    np.testing.assert_allclose(masks.summed_shapley(HAND_VALUES, [True] * 3), HAND_ALL_SUMS, atol=1e-12)
    np.testing.assert_allclose(masks.summed_shapley(HAND_VALUES, [True] * 3, "l1"),
                               HAND_ALL_L1_SUMS, atol=1e-12)
    np.testing.assert_allclose(masks.summed_shapley(HAND_VALUES, [False, False, True]),
                               [-5, 0, 0, 0, 3, 5, -4, 0], atol=1e-12)
    # no frame selected: 8 zeros, no negative point
    np.testing.assert_array_equal(masks.summed_shapley(HAND_VALUES, [False] * 3), np.zeros(8))


@pytest.mark.parametrize("eps, rule, normalise, drop, sums, used, n_frames", [
    (0.1, "auto", "none", [1, 4, 5], HAND_ERROR_SUMS, "error", 2),
    (0.075, "auto", "none", [1, 4, 5], HAND_ERROR_SUMS, "error", 2),
    (0.05, "auto", "none", [0, 1, 6], HAND_ALL_SUMS, "all", 3),
    (0.025, "auto", "none", [0, 1, 6], HAND_ALL_SUMS, "all", 3),
    (0.025, "error", "none", [1, 4, 5], HAND_ERROR_SUMS, "error", 2),
    (0.1, "all", "none", [0, 1, 6], HAND_ALL_SUMS, "all", 3),
    (0.05, "auto", "l1", [0, 1, 5, 6], HAND_ALL_L1_SUMS, "all", 3),
])
def test_find_gives_the_hand_computed_negative_points(eps, rule, normalise, drop, sums, used, n_frames):
    found, found_sums, found_rule, found_frames = masks.find(
        HAND_VALUES, HAND_LABELS, HAND_PREDICTED, eps, rule, normalise)
    assert found == drop
    np.testing.assert_allclose(found_sums, sums, atol=1e-12)
    assert (found_rule, found_frames) == (used, n_frames)


def test_true_class_values_pick_each_frames_label_column():
    # two explained classes per frame; the label sits in column 1, 0 and 1; the other column is junk
    shap_values = np.full((3, 2, 8, 2), 99.0)
    shap_values[0, :, :, 1] = HAND_VALUES[0]
    shap_values[1, :, :, 0] = HAND_VALUES[1]
    shap_values[2, :, :, 1] = HAND_VALUES[2]
    classes = np.array([[0, 1], [3, 9], [7, 5]])
    content = {"labels": HAND_LABELS, "output_classes": classes, "shap_values": shap_values}
    np.testing.assert_array_equal(masks.true_class_values(content), HAND_VALUES)
    content["output_classes"] = np.array([[0, 2], [3, 9], [7, 5]])    # frame 0's label 1 is missing
    with pytest.raises(ValueError, match="do not include every frame's true class"):
        masks.true_class_values(content)


# --- the mask object ---------------------------------------------------------------------

def test_make_mask_sorts_counts_and_keeps_the_derivation():
    mask = masks.make_mask(np.array([77, 17, 60]), 128, "fgsm", 0.1, "ab" * 32, frame_rule="error")
    assert mask == {"frame_length": 128, "drop": [17, 60, 77], "m": 3, "mode": "drop", "attack": "fgsm",
                    "eps": 0.1, "model_sha256": "ab" * 32, "frame_rule": "error"}
    assert all(type(i) is int for i in mask["drop"])       # JSON-serialisable, not numpy ints
    json.dumps(mask)


@pytest.mark.parametrize("mask, message", [
    ([1, 2], "expected a JSON object, got list"),
    ({"drop": [1]}, "no 'frame_length'"),
    ({"frame_length": 8}, "no 'drop'"),
    ({"frame_length": 0, "drop": []}, "frame_length must be a positive integer, got 0"),
    ({"frame_length": 8.0, "drop": []}, "frame_length must be a positive integer, got 8.0"),
    ({"frame_length": 8, "drop": [1.0]}, "drop must be a list of integer positions"),
    ({"frame_length": 8, "drop": "1"}, "drop must be a list of integer positions"),
    ({"frame_length": 8, "drop": [3, 8]}, r"positions \[8\] out of range 0..7"),
    ({"frame_length": 8, "drop": [-1, 3]}, r"positions \[-1\] out of range 0..7"),
    ({"frame_length": 8, "drop": [2, 2, 5]}, r"duplicate positions \[2\]"),
    ({"frame_length": 8, "drop": [5, 2]}, "drop must be sorted"),
    ({"frame_length": 3, "drop": [0, 1, 2]}, "drops all 3 positions; nothing would remain"),
    ({"frame_length": 8, "drop": [1, 2], "m": 3}, "m = 3 but drop lists 2 positions"),
    ({"frame_length": 8, "drop": [1, 2], "mode": "blank"}, "mode 'blank' is not one of drop, zero"),
])
def test_validate_refuses_malformed_masks_naming_the_source(mask, message):
    with pytest.raises(ValueError, match=f"^my.json: {message}"):
        masks.validate(mask, "my.json")


def test_validate_accepts_good_masks():
    for mask in ({"frame_length": 8, "drop": []}, {"frame_length": 8, "drop": [0, 7], "m": 2, "mode": "zero"},
                 {"frame_length": 128, "drop": list(range(127))}):
        assert masks.validate(mask) is mask


def test_validate_refuses_booleans_as_positions_or_frame_length():
    # BUG (masks.validate): JSON true/false pass `isinstance(i, int)`, so
    # {"drop": [false, true]} is taken as positions 0 and 1 and "frame_length": true as 1.
    for mask in ({"frame_length": 8, "drop": [False, True]}, {"frame_length": True, "drop": []}):
        try:
            masks.validate(mask, "my.json")
        except ValueError:
            continue
        pytest.fail(f"BUG: masks.validate accepts JSON booleans as integers: {mask}")


def test_keep_positions_and_apply_delete_or_zero_exactly_the_dropped_positions():
    mask = masks.make_mask([0, 3, 7], 8, "fgsm", 0.1, None)
    np.testing.assert_array_equal(masks.keep_positions(mask), [1, 2, 4, 5, 6])
    frames = np.arange(2 * 2 * 8, dtype=np.float32).reshape(2, 2, 8) + 1    # no zeros before zeroing
    dropped = masks.apply(frames, mask)
    np.testing.assert_array_equal(dropped, frames[..., [1, 2, 4, 5, 6]])
    assert dropped.shape == (2, 2, 5)
    zeroed = masks.apply(frames, mask, mode="zero")
    assert zeroed.shape == frames.shape
    np.testing.assert_array_equal(zeroed[..., [0, 3, 7]], 0)
    np.testing.assert_array_equal(zeroed[..., [1, 2, 4, 5, 6]], frames[..., [1, 2, 4, 5, 6]])
    assert frames.min() == 1                                                 # the input is left alone
    complex_frames = shapft_testing.random_frames(3, frame_length=8)
    np.testing.assert_array_equal(masks.apply(complex_frames, mask), complex_frames[:, [1, 2, 4, 5, 6]])
    with pytest.raises(ValueError, match="frames have 7 samples, the mask expects 8"):
        masks.apply(frames[..., :7], mask)
    with pytest.raises(ValueError, match="mode 'cut' is not one of drop, zero"):
        masks.apply(frames, mask, mode="cut")


def test_mask_save_load_and_the_mask_a_model_file_carries(tmp_path):
    mask = masks.make_mask(ERROR_DROP, 128, "fgsm", 0.1, "cd" * 32, frame_rule="error", frames_used=2)
    masks.save(tmp_path / "mask.json", mask)
    assert json.loads((tmp_path / "mask.json").read_text()) == mask
    assert masks.load(tmp_path / "mask.json") == mask
    assert masks.output_length(tmp_path / "mask.json") == 125
    assert masks.output_length(tmp_path / "mask.json", mode="zero") == 128

    # a SHAP-FT model file carries its mask; the original model carries none
    shapft_testing.write_model(tmp_path / "shapft.pt", frame_length=125, mask=mask)
    assert masks.load(tmp_path / "shapft.pt") == mask
    assert masks.output_length(tmp_path / "shapft.pt") == 125
    shapft_testing.write_model(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="carries no mask"):
        masks.load(tmp_path / "plain.pt")

    with pytest.raises(FileNotFoundError, match="does not exist"):
        masks.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        masks.load(tmp_path / "bad.json")
    (tmp_path / "unsorted.json").write_text(json.dumps({"frame_length": 128, "drop": [5, 1]}))
    with pytest.raises(ValueError, match=r"^mask file .*unsorted.json: drop must be sorted"):
        masks.load(tmp_path / "unsorted.json")
    with pytest.raises(ValueError, match="positions"):
        masks.save(tmp_path / "never.json", {"frame_length": 4, "drop": [9]})
    assert not (tmp_path / "never.json").exists()


def test_random_positions_are_m_distinct_sorted_positions_fixed_by_the_seed():
    drawn = masks.random_positions(40, 128, seed=3)
    assert len(drawn) == len(set(drawn)) == 40
    assert drawn == sorted(drawn) and 0 <= drawn[0] and drawn[-1] < 128
    assert masks.random_positions(40, 128, seed=3) == drawn
    assert masks.random_positions(40, 128, seed=4) != drawn
    assert masks.random_positions(0, 128, seed=3) == []
    assert len(set(masks.random_positions(127, 128, seed=3))) == 127
    # uniform: over many seeds every position is drawn about m / L of the time
    counts = np.zeros(128)
    for seed in range(400):
        counts[masks.random_positions(32, 128, seed)] += 1
    assert counts.sum() == 400 * 32
    assert abs(counts.mean() - 100) < 1e-9 and counts.min() > 60 and counts.max() < 140


def test_check_fits_model(tmp_path):
    original = model_file.load(shapft_testing.write_model(tmp_path / "original.pt"))
    mask = masks.make_mask(ERROR_DROP, 128, "fgsm", 0.1, original.sha256)
    masks.check_fits_model(mask, original)
    foreign = dict(mask, model_sha256="0" * 64)
    with pytest.raises(ValueError, match="pass --force"):
        masks.check_fits_model(foreign, original)
    with pytest.warns(UserWarning, match="derived from model sha256 000000000000"):
        masks.check_fits_model(foreign, original, force=True)
    with pytest.raises(ValueError, match="mask frame_length 64 does not match the model's frame length 128"):
        masks.check_fits_model(masks.make_mask([1], 64, "fgsm", 0.1, None), original)
    carrier = model_file.load(shapft_testing.write_model(tmp_path / "carrier.pt", frame_length=125, mask=mask))
    masks.check_fits_model(mask, carrier)
    with pytest.raises(ValueError, match="fine-tuned with another mask"):
        masks.check_fits_model(masks.make_mask([1, 2, 3], 128, "fgsm", 0.1, None), carrier)


# --- `shapft mask` ---------------------------------------------------------------------------

def write_shap_npz(path, model_sha256, labels=HAND_LABELS, predicted=HAND_PREDICTED, true_class=True):
    """An explain .npz holding the hand-made values spread over 128 positions. Two
    classes are explained per frame: the true one (if true_class) and another with
    values that would give other negative points."""
    n = len(labels)
    values = np.empty((n, 2, 128, 2))
    other = np.array([(label + 1) % len(CLASSES) for label in labels])
    if true_class:
        columns = np.array([[label, o] for label, o in zip(labels, other)])
        values[..., 0] = spread(HAND_VALUES[:n])
    else:
        columns = np.array([[o, (o + 1) % len(CLASSES)] for o in other])
        values[..., 0] = -1.0
    values[..., 1] = -1.0                                        # every position negative
    result = types.SimpleNamespace(values=values, classes=columns,
                                   draws=types.SimpleNamespace(background=np.zeros((n, 4), np.int64),
                                                               alphas=np.full((n, 4), 0.5)))
    explain.save(path, result, frame_indices=np.arange(n), background_indices=np.arange(5), labels=labels,
                 predicted=predicted, class_names=CLASSES, engine="vectorised", outputs="all", output="softmax",
                 alphas="shap", nsamples=4, seed=7, model_sha256=model_sha256, data_sha256="d" * 64,
                 background_sha256="b" * 64)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The original (small, untrained) CNN-LSTM, its SHAP values, a mask derived from
    them and tiny-train recordings: 55 frames of 128 samples and 22 of 64."""
    root = tmp_path_factory.mktemp("shapft_pipeline")
    shapft_testing.write_model(root / "original.pt")
    shapft_testing.write_model(root / "other.pt", seed=5)
    sha = model_file.load(root / "original.pt").sha256
    write_shap_npz(root / "shap.npz", sha)
    labels = np.repeat(np.arange(len(CLASSES)), N_FT_PER_CLASS)
    snr = np.tile([0.0, 10.0, 0.0, 10.0, 0.0], len(CLASSES))
    recording.write(root / "train", recording.Recording(shapft_testing.random_frames(len(labels), seed=1), labels, snr),
                    "fine-tuning frames")
    short_labels = np.repeat(np.arange(len(CLASSES)), 2)
    recording.write(root / "short", recording.Recording(shapft_testing.random_frames(22, frame_length=64, seed=2),
                                                        short_labels, np.zeros(22)), "64-sample frames")
    mask = masks.make_mask(ERROR_DROP, 128, "fgsm", 0.1, sha, frame_rule="error", frames_used=2)
    masks.save(root / "mask.json", mask)
    return root


def test_cli_mask_writes_the_hand_computed_negative_points(shapft, files, tmp_path):
    code, out, err = shapft("mask", "--shap", files / "shap.npz", "--eps", 0.1, "--out", tmp_path / "m.json")
    assert code == 0, err
    mask = masks.load(tmp_path / "m.json")
    assert mask["drop"] == ERROR_DROP and mask["m"] == 3 and mask["frame_length"] == 128
    assert (mask["frame_rule"], mask["frames_used"], mask["eps"], mask["attack"]) == ("error", 2, 0.1, "fgsm")
    assert mask["model_sha256"] == model_file.load(files / "original.pt").sha256
    assert mask["psr_db"] == pytest.approx(10 * math.log10(2 * 0.1 ** 2))
    assert (mask["normalise"], mask["shap_output"], mask["nsamples"], mask["shap_seed"],
            mask["explained_sha256"]) == ("none", "softmax", 4, 7, "d" * 64)
    assert out.strip() == f"{tmp_path / 'm.json'}: m = 3 negative points of 128 (error rule, 2 frames, " \
                          "eps 0.1 (PSR -17.0 dB))"


@pytest.mark.parametrize("options, drop, rule, n_frames", [
    (("--eps", 0.05), ALL_DROP, "all", 3),                                   # the paper's rule at eps <= 0.05
    (("--psr-db", budget.eps_to_psr_db(0.05)), ALL_DROP, "all", 3),          # the same budget as PSR
    (("--eps", 0.1, "--frames", "all"), ALL_DROP, "all", 3),
    (("--eps", 0.025, "--frames", "error"), ERROR_DROP, "error", 2),
    (("--eps", 0.05, "--normalise", "l1"), ALL_L1_DROP, "all", 3),
])
def test_cli_mask_frame_rules_and_normalisation(shapft, files, tmp_path, options, drop, rule, n_frames):
    code, _, err = shapft("mask", "--shap", files / "shap.npz", "--out", tmp_path / "m.json", *options)
    assert code == 0, err
    mask = masks.load(tmp_path / "m.json")
    assert (mask["drop"], mask["frame_rule"], mask["frames_used"]) == (drop, rule, n_frames)


def test_cli_mask_figure(shapft, files, tmp_path):
    code, _, err = shapft("mask", "--shap", files / "shap.npz", "--eps", 0.1, "--out", tmp_path / "m.json",
                          "--figure", tmp_path / "sums.png")
    assert code == 0, err
    assert (tmp_path / "sums.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_mask_refuses_bad_input_in_one_line(shapft, files, tmp_path):
    out = tmp_path / "m.json"
    code, _, err = shapft("mask", "--shap", tmp_path / "missing.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "--shap" in one_line_error(err, "mask") and "no such file" in err
    code, _, err = shapft("mask", "--shap", files / "shap.npz", "--eps", -0.1, "--out", out)
    assert code == 2 and "eps must be a finite number >= 0, got -0.1" in one_line_error(err, "mask")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    code, _, err = shapft("mask", "--shap", tmp_path / "junk.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "cannot be read" in one_line_error(err, "mask")
    write_shap_npz(tmp_path / "no_true.npz", "0" * 64, true_class=False)
    code, _, err = shapft("mask", "--shap", tmp_path / "no_true.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "--outputs true" in one_line_error(err, "mask")
    write_shap_npz(tmp_path / "all_right.npz", "0" * 64, predicted=HAND_LABELS)
    code, _, err = shapft("mask", "--shap", tmp_path / "all_right.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "rule 'error' selects no frames" in one_line_error(err, "mask")
    assert not out.exists()
    # ... and the same file with all frames is fine (they are all classified right at eps 0.05)
    code, _, err = shapft("mask", "--shap", tmp_path / "all_right.npz", "--eps", 0.05, "--out", out)
    assert code == 0, err
    assert masks.load(out)["drop"] == ALL_DROP

    # an existing mask is kept unless --force
    before = out.read_bytes()
    code, _, err = shapft("mask", "--shap", files / "shap.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "exists; pass --force to overwrite" in one_line_error(err, "mask")
    assert out.read_bytes() == before
    code, _, err = shapft("mask", "--shap", files / "shap.npz", "--eps", 0.1, "--out", out, "--force")
    assert code == 0, err
    assert masks.load(out)["drop"] == ERROR_DROP


# --- finetune.py and `shapft finetune` ------------------------------------------------------

def test_split_train_val_is_a_stratified_partition():
    labels = np.repeat(np.arange(4), 10)
    snr = np.tile(np.repeat([0.0, 10.0], 5), 4)
    train, val = finetune.split_train_val(labels, snr, seed=0)
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(40))
    for key in range(4):
        for s in (0.0, 10.0):
            members = np.flatnonzero((labels == key) & (snr == s))
            assert len(np.intersect1d(members, val)) == 1       # a fifth of each (class, SNR) cell
    again = finetune.split_train_val(labels, snr, seed=0)
    np.testing.assert_array_equal(again[1], val)
    assert not np.array_equal(finetune.split_train_val(labels, snr, seed=1)[1], val)


def test_finetune_refuses_incomplete_requests():
    original = shapft_testing.small_cnn_lstm()
    x, y, snr = np.zeros((10, 2, 128), np.float32), np.zeros(10, np.int64), np.zeros(10)
    with pytest.raises(ValueError, match="method 'pgd' is not one of shapft, random, direct, at_fgsm"):
        finetune.finetune(original, x, y, snr, "pgd")
    for method in ("shapft", "random"):
        with pytest.raises(ValueError, match=f"{method} fine-tuning needs the kept positions"):
            finetune.finetune(original, x, y, snr, method)
    with pytest.raises(ValueError, match="at_fgsm fine-tuning needs eps"):
        finetune.finetune(original, x, y, snr, "at_fgsm")


def test_at_fgsm_loss_is_half_clean_half_fgsm_against_the_model_in_training():
    model = shapft_testing.small_cnn_lstm(seed=2)
    x = torch.from_numpy(recording.to_model_input(shapft_testing.random_frames(6, seed=4)))
    y = torch.arange(6)
    model.train()
    x_adv = attacks.FGSM(model, eps=0.2)(x, y)             # crafted in eval mode, before the loss's
    assert torch.allclose((x_adv - x).abs(), torch.full_like(x, 0.2), atol=1e-6)   # forward moves BN stats
    assert model.training
    loss, logits = finetune.at_fgsm_loss(0.2)(model, x, y)
    assert model.training                                  # the attack restored train mode
    with torch.no_grad():
        both = model(torch.cat([x, x_adv]))                # train mode: batch norm over the 12 frames
        expected = torch.nn.functional.cross_entropy(both, torch.cat([y, y]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(logits, both[6:], atol=1e-5)


def cnn_weights(path):
    return {k: v.clone() for k, v in model_file.load(path).module.state_dict().items()}


def by_hand(files, method, keep=None, eps=None, seed=0):
    """finetune.finetune on the frames the test deletes itself: what the CLI must export."""
    loaded = model_file.load(files / "original.pt")
    data = recording.read(files / "train.sigmf-meta")
    x = data.model_input()
    model, result = finetune.finetune(finetune.cnn_lstm_from(loaded), x, data.labels, data.snr_db, method,
                                      keep=keep, eps=eps, seed=seed, epochs=1, patience=1, progress=False)
    return model.state_dict(), result


def assert_same_weights(state, path):
    exported = cnn_weights(path)
    assert set(exported) == set(state)
    for name, value in state.items():
        assert torch.equal(exported[name], value), name


def finetune_args(files, out, method, *extra):
    return ("finetune", "--model", files / "original.pt", "--data", files / "train.sigmf-meta", "--out", out,
            "--method", method, "--epochs", 1, "--patience", 1, "--threads", 1, "--quiet", *extra)


def test_cli_finetune_shapft_exports_the_mask_and_takes_128_minus_m(shapft, files, tmp_path):
    out = tmp_path / "shapft.pt"
    code, stdout, err = shapft(*finetune_args(files, out, "shapft", "--mask", files / "mask.json",
                                              "--evaluate", files / "train.sigmf-meta"))
    assert code == 0, err
    loaded = model_file.load(out)                      # load() runs the model on [1, 2, 125]
    mask = masks.load(files / "mask.json")
    assert loaded.frame_length == 125 and loaded.mask == mask
    assert model_file.full_frame_length_of(out) == 128
    assert masks.load(out) == mask
    assert loaded.metadata["training"]["method"] == "shapft"
    assert loaded.metadata["provenance"]["original_sha256"] == model_file.load(files / "original.pt").sha256
    weights = loaded.module.state_dict()
    assert tuple(weights["dense.weight"].shape) == (finetune.FINETUNE_DENSE_UNITS, 16)   # 32 -> 128
    assert tuple(weights["classifier.weight"].shape) == (len(CLASSES), finetune.FINETUNE_DENSE_UNITS)
    with torch.no_grad():
        assert loaded.module(torch.zeros(3, 2, 125)).shape == (3, len(CLASSES))
    assert "frames of 125 samples" in stdout

    # the exported network is the library's fine-tuning on frames without positions 17, 60, 77
    keep = np.setdiff1d(np.arange(128), ERROR_DROP)
    state, _ = by_hand(files, "shapft", keep=keep)
    assert_same_weights(state, out)
    other_state, _ = by_hand(files, "shapft", keep=np.setdiff1d(np.arange(128), [0, 1, 2]))
    assert not torch.equal(other_state["conv.weight"], state["conv.weight"])   # the positions matter

    # --evaluate classifies the recording after the same deletion
    data = recording.read(files / "train.sigmf-meta")
    predictions = metrics.predict_logits(loaded.module, data.model_input()[:, :, keep]).argmax(axis=1)
    accuracy = float(np.mean(predictions == data.labels))
    match = re.search(r"accuracy ([0-9.]+)% over 55 frames", stdout)
    assert match, stdout
    assert float(match.group(1)) == pytest.approx(100 * accuracy, abs=0.05)


def test_cli_finetune_random_deletes_as_many_other_positions(shapft, files, tmp_path):
    out = tmp_path / "random.pt"
    code, stdout, err = shapft(*finetune_args(files, out, "random", "--mask", files / "mask.json", "--seed", 4))
    assert code == 0, err
    loaded = model_file.load(out)
    drawn = masks.random_positions(3, 128, 4)
    assert loaded.mask["drop"] == drawn and loaded.mask["m"] == 3 and loaded.frame_length == 125
    assert loaded.mask["drop"] != ERROR_DROP
    assert loaded.mask["model_sha256"] == model_file.load(files / "original.pt").sha256
    assert "random (seed 4)" in loaded.mask["selection"]
    assert loaded.metadata["training"]["method"] == "random"
    state, _ = by_hand(files, "random", keep=np.setdiff1d(np.arange(128), drawn), seed=4)
    assert_same_weights(state, out)


def test_cli_finetune_direct_and_at_fgsm_keep_128_samples(shapft, files, tmp_path):
    code, _, err = shapft(*finetune_args(files, tmp_path / "direct.pt", "direct"))
    assert code == 0, err
    code, _, err = shapft(*finetune_args(files, tmp_path / "at.pt", "at_fgsm", "--eps", 0.05))
    assert code == 0, err
    for name, method in (("direct", "direct"), ("at", "at_fgsm")):
        loaded = model_file.load(tmp_path / f"{name}.pt")
        assert loaded.frame_length == 128 and loaded.mask is None
        assert loaded.metadata["training"]["method"] == method
        assert model_file.full_frame_length_of(tmp_path / f"{name}.pt") == 128
    direct, _ = by_hand(files, "direct")
    assert_same_weights(direct, tmp_path / "direct.pt")
    at_fgsm, _ = by_hand(files, "at_fgsm", eps=0.05)
    assert_same_weights(at_fgsm, tmp_path / "at.pt")
    assert not torch.equal(direct["conv.weight"], at_fgsm["conv.weight"])      # the FGSM half changes training


def test_cli_finetune_refuses_bad_input_in_one_line(shapft, files, tmp_path):
    out = tmp_path / "ft.pt"

    def refused(*args, expect):
        code, _, err = shapft(*args)
        assert code == 2, err
        assert expect in one_line_error(err, "finetune")
        assert not out.exists()

    refused("finetune", "--model", tmp_path / "missing.pt", "--data", files / "train.sigmf-meta", "--out", out,
            "--method", "direct", expect="--model")
    refused("finetune", "--model", files / "original.pt", "--data", tmp_path / "missing.sigmf-meta", "--out",
            out, "--method", "direct", expect="no such file")
    refused(*finetune_args(files, out, "shapft"), expect="--method shapft needs --mask")
    refused(*finetune_args(files, out, "random"), expect="--method random needs --mask")
    refused(*finetune_args(files, out, "shapft", "--mask", tmp_path / "none.json"), expect="does not exist")
    refused(*finetune_args(files, out, "at_fgsm"), expect="--method at_fgsm needs --eps")
    refused(*finetune_args(files, out, "at_fgsm", "--eps", -0.1), expect="--eps must be >= 0, got -0.1")
    refused(*finetune_args(files, out, "direct", "--epochs", 0), expect="epochs must be an integer >= 1")
    args = list(finetune_args(files, out, "direct"))
    args[args.index("--data") + 1] = files / "short.sigmf-meta"
    refused(*args, expect="--data frames have 64 samples, the model takes 128")
    short_mask = masks.make_mask([1, 2], 64, "fgsm", 0.1, None)
    masks.save(tmp_path / "short.json", short_mask)
    refused(*finetune_args(files, out, "shapft", "--mask", tmp_path / "short.json"),
            expect="mask frame_length 64 does not match the model's frame length 128")
    # a mask derived from another model: refused, accepted (with a warning) with --force
    args = list(finetune_args(files, out, "shapft", "--mask", files / "mask.json"))
    args[args.index("--model") + 1] = files / "other.pt"
    refused(*args, expect="pass --force to use it anyway")
    with pytest.warns(UserWarning, match="the mask was derived from model sha256"):
        code, _, err = shapft(*args, "--force")
    assert code == 0, err
    assert model_file.load(out).frame_length == 125

    # an existing output is kept unless --force
    before = out.read_bytes()
    code, _, err = shapft(*finetune_args(files, out, "direct"))
    assert code == 2 and "exists; pass --force to overwrite" in one_line_error(err, "finetune")
    assert out.read_bytes() == before
    code, _, err = shapft(*finetune_args(files, out, "direct", "--force"))
    assert code == 0, err
    assert model_file.load(out).frame_length == 128


@pytest.mark.parametrize("method", ["shapft", "direct"])
def test_cli_finetune_refuses_an_evaluate_recording_of_another_frame_length(shapft, files, tmp_path, method):
    # BUG (cli/finetune.py, --evaluate): the recording's frame length is never checked.
    # shapft/random index 64-sample frames with the kept positions (IndexError, a traceback
    # instead of a one-line error); direct/at_fgsm classify the 64-sample frames and print
    # an accuracy. Both only after training and writing --out.
    out = tmp_path / "ft.pt"
    args = finetune_args(files, out, method, "--mask", files / "mask.json", "--evaluate", files / "short.sigmf-meta")
    try:
        code, stdout, err = shapft(*args)
    except IndexError as crash:
        pytest.fail(f"BUG: `shapft finetune --method {method} --evaluate <64-sample frames>` crashes with "
                    f"IndexError ({crash}) instead of exit code 2 and a one-line error")
    assert code == 2, f"BUG: `shapft finetune --method {method} --evaluate <64-sample frames>` exits {code} " \
                      f"and prints {stdout.strip()!r} instead of refusing frames the model does not take"
    assert "64" in one_line_error(err, "finetune")
    assert not out.exists()


def test_cli_finetune_refuses_a_transformer(shapft, files, tmp_path):
    shapft_testing.write_model(tmp_path / "transformer.pt", arch="transformer_compact")
    args = list(finetune_args(files, tmp_path / "ft.pt", "direct"))
    args[args.index("--model") + 1] = tmp_path / "transformer.pt"
    code, _, err = shapft(*args)
    assert code == 2 and "fine-tunes a cnn_lstm, not a transformer_compact" in one_line_error(err, "finetune")


# --- defense_eval: clean, transferred and adaptive accuracy ---------------------------------

def hand_adaptive(module, keep, x, labels, eps):
    """FGSM crafted against the deletion + model, computed here; returns (x_adv, accuracy)."""
    classifier = masked.MaskedClassifier(module, torch.as_tensor(keep, dtype=torch.long)).eval()
    x, labels = torch.from_numpy(x), torch.from_numpy(labels)
    x_adv = attacks.FGSM(classifier, eps=eps)(x, labels)
    with torch.no_grad():
        accuracy = float(np.mean((classifier(x_adv).argmax(dim=1) == labels).numpy()))
    return x_adv, accuracy


def test_score_model_adaptive_attack_goes_through_the_deletion(tmp_path):
    drop = list(range(0, 128, 4))                                   # m = 32
    mask = masks.make_mask(drop, 128, "fgsm", 1.0, None)
    path = shapft_testing.write_model(tmp_path / "shapft.pt", frame_length=96, mask=mask, seed=4)
    loaded = model_file.load(path)
    keep = masks.keep_positions(mask)
    frames = shapft_testing.random_frames(40, seed=6)
    x = recording.to_model_input(frames)
    # labels = the model's own clean predictions, so clean accuracy is 1 and the attack has something to take
    labels = metrics.predict_logits(loaded.module, x[:, :, keep]).argmax(axis=1)
    clean = recording.Recording(frames, labels, np.zeros(40))
    attacked_frames = shapft_testing.random_frames(40, seed=7)
    attacked = recording.Recording(attacked_frames, labels, np.zeros(40))
    eps = 1.0                      # an untrained network needs a large step to change its mind
    score = defense_eval.score_model(path, clean, attacked, eps, seed=0)

    x_adv, adaptive = hand_adaptive(loaded.module, keep, x, labels, eps)
    delta = (x_adv - torch.from_numpy(x)).numpy()
    assert np.all(delta[:, :, drop] == 0)                          # deleted samples get no gradient
    assert np.allclose(np.abs(delta[:, :, keep]), eps, atol=1e-6)  # the kept ones the full step
    assert adaptive < 0.9                                           # the attack does something here
    attacked_acc = float(np.mean(metrics.predict_logits(
        loaded.module, recording.to_model_input(attacked_frames)[:, :, keep]).argmax(axis=1) == labels))
    assert score == {"clean": 1.0, "attacked": pytest.approx(attacked_acc, abs=1e-12),
                     "adaptive": pytest.approx(adaptive, abs=1e-12), "m": 32}


def test_score_model_without_a_mask_attacks_the_model_itself(tmp_path):
    path = shapft_testing.write_model(tmp_path / "direct.pt", seed=8)
    loaded = model_file.load(path)
    frames = shapft_testing.random_frames(30, seed=9)
    x = recording.to_model_input(frames)
    labels = metrics.predict_logits(loaded.module, x).argmax(axis=1)
    clean = recording.Recording(frames, labels, np.zeros(30))
    score = defense_eval.score_model(path, clean, clean, 0.3, seed=0)
    x_adv = attacks.FGSM(loaded.module, eps=0.3)(torch.from_numpy(x), torch.from_numpy(labels))
    adaptive = float(np.mean(metrics.predict_logits(loaded.module, x_adv.numpy()).argmax(axis=1) == labels))
    assert adaptive < 0.9
    assert score == {"clean": 1.0, "attacked": 1.0, "adaptive": pytest.approx(adaptive, abs=1e-12), "m": 0}


def test_summarise_is_mean_and_sample_std_over_seeds():
    scores = {"0": {"clean": 0.5, "attacked": 0.2, "adaptive": 0.1, "m": 3},
              "1": {"clean": 0.7, "attacked": 0.4, "adaptive": 0.1, "m": 3},
              "2": {"clean": 0.9, "attacked": 0.3, "adaptive": 0.4, "m": 3}}
    summary = defense_eval.summarise(scores)
    assert summary["clean"]["mean"] == pytest.approx(0.7) and summary["clean"]["std"] == pytest.approx(0.2)
    assert summary["attacked"]["mean"] == pytest.approx(0.3) and summary["attacked"]["std"] == pytest.approx(0.1)
    assert summary["adaptive"]["values"] == [0.1, 0.1, 0.4] and summary["adaptive"]["n"] == 3
    single = defense_eval.summarise({"0": scores["0"]})
    assert single["clean"] == {"mean": 0.5, "std": 0.0, "n": 1, "values": [0.5]}


# --- `shapft reproduce --preset micro`, twice -------------------------------------------

def snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A micro run without the distillation, the same command with --distill (adds the
    distill stage and redoes the report), and that command again: (out dir, the three
    stdouts, files before and after the third run)."""
    out = tmp_path_factory.mktemp("reproduce") / "micro"
    command = [sys.executable, "-m", "gnuradio.shapft.cli", "reproduce", "--preset", "micro", "--out", str(out),
               "--threads", "1", "--quiet"]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MPLBACKEND="Agg")

    def run(extra, timeout):
        result = subprocess.run(command + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    first = run([], 1500)
    first_results = json.loads((out / "results.json").read_text())
    with_distill = run(["--distill"], 900)
    before = snapshot(out)
    again = run(["--distill"], 300)
    return types.SimpleNamespace(out=out, first=first, first_results=first_results, with_distill=with_distill,
                                 second=again, before=before, after=snapshot(out),
                                 pipeline=reproduce.Pipeline(out, reproduce.PRESETS["micro"]))


EPS_LEVELS = reproduce.PRESETS["micro"].eps_levels


def test_reproduce_micro_finishes_with_report_results_figures_masks_and_stages(micro):
    out = micro.out
    for stage in reproduce.STAGES:
        assert (f"[{stage}] finished in" in micro.first) == (stage != "distill")
    assert "[distill] not asked for (--distill), skipped" in micro.first
    assert micro.first_results["distillation"] is None
    assert f"report: {out / 'report.md'}; results: {out / 'results.json'}" in micro.first
    stages = json.loads((out / "stages.json").read_text())
    assert list(stages) == list(reproduce.STAGES)
    assert all(info["seconds"] >= 0 for info in stages.values())
    results = json.loads((out / "results.json").read_text())
    assert results["preset"] == "micro" and results["seed"] == 1
    assert set(results["figures"]) == {"fig4", "fig5", "fig6", "fig7"}
    for relative in results["figures"].values():
        data = (out / relative).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, relative
    report = (out / "report.md").read_text()
    assert report.startswith("# gr-shapft reproduce --preset micro (seed 1)")
    for relative in results["figures"].values():
        assert f"]({relative})" in report
    assert [row["eps"] for row in results["shapft"]] == list(EPS_LEVELS)
    for eps, row in zip(EPS_LEVELS, results["shapft"]):
        mask = masks.load(out / "masks" / f"eps{eps:g}.json")
        assert results["masks"][f"{eps:g}"] == mask
        assert row["m"] == mask["m"] and row["frame_rule"] == mask["frame_rule"]
        assert f"| {eps:g} | {budget.eps_to_psr_db(eps):.1f} | {mask['m']} | {mask['frames_used']} " \
               f"({mask['frame_rule']}) |" in report
    assert results["distillation"] is not None and (out / "distill" / "distill_results.json").exists()
    assert "## Attention-based adversarial robust distillation" in report
    assert (out / "commands.log").read_text().count("shapft finetune") == 7


def test_reproduce_micro_distill_added_later_runs_only_distill_and_report(micro):
    finished = re.findall(r"\[(\w+)\] finished in", micro.with_distill)
    skipped = re.findall(r"\[(\w+)\] done before", micro.with_distill)
    assert finished == ["distill", "report"]
    assert skipped == [stage for stage in reproduce.STAGES if stage not in ("distill", "report")]


def test_reproduce_micro_masks_follow_from_the_shap_values(micro):
    for eps in EPS_LEVELS:
        content = explain.load(micro.pipeline.shap_values(eps))
        assert content["outputs"] == "true"
        np.testing.assert_array_equal(content["output_classes"][:, 0], content["labels"])
        values = content["shap_values"][..., 0]                            # [N, 2, 128], the true class
        error = content["labels"] != content["predicted"]
        selected = np.ones(len(error), bool) if eps <= 0.05 else error     # the paper's rule, by hand
        sums = values[selected].sum(axis=(0, 1))
        mask = masks.load(micro.pipeline.mask(eps))
        assert mask["drop"] == np.flatnonzero(sums < 0).tolist()
        assert mask["frame_rule"] == ("all" if eps <= 0.05 else "error")
        assert mask["frames_used"] == int(selected.sum()) > 0
        assert mask["model_sha256"] == model_file.load(micro.pipeline.original).sha256
        assert 0 < mask["m"] < 128


def test_reproduce_micro_finetuned_models_carry_their_masks(micro):
    p = micro.pipeline
    direct = model_file.load(p.finetuned("direct", 0))
    assert direct.frame_length == 128 and direct.mask is None
    for eps in EPS_LEVELS:
        mask = masks.load(p.mask(eps))
        shapft_model = model_file.load(p.finetuned("shapft", 0, eps))
        assert shapft_model.mask == mask and shapft_model.frame_length == 128 - mask["m"]
        random_model = model_file.load(p.finetuned("random", 0, eps))
        assert random_model.mask["m"] == mask["m"] and random_model.frame_length == 128 - mask["m"]
        assert random_model.mask["drop"] == masks.random_positions(mask["m"], 128, 0)
        assert random_model.mask["drop"] != mask["drop"]
        at_fgsm = model_file.load(p.finetuned("at_fgsm", 0, eps))
        assert at_fgsm.frame_length == 128 and at_fgsm.mask is None
        assert at_fgsm.metadata["training"]["method"] == "at_fgsm"


def test_reproduce_micro_evaluation_matches_a_hand_computation(micro):
    p = micro.pipeline
    results = json.loads((micro.out / "evaluation.json").read_text())
    assert set(results) == {f"{eps:g}" for eps in EPS_LEVELS}
    clean = recording.read(p.tiny / "adv-data.sigmf-meta")
    original = model_file.load(p.original)
    eps = EPS_LEVELS[-1]
    entry = results[f"{eps:g}"]
    attacked = recording.read(p.attacked(eps, "adv-data"))
    delta = attacked.model_input() - clean.model_input()
    assert np.abs(delta).max() == pytest.approx(eps, abs=1e-5)         # FGSM at eps on adv-data
    original_attacked = np.mean(metrics.predict_logits(original.module, attacked.model_input()).argmax(1)
                                == attacked.labels)
    assert entry["original"]["attacked"] == pytest.approx(original_attacked, abs=1e-12)
    mask = masks.load(p.mask(eps))
    assert entry["m"] == mask["m"] and entry["frame_rule"] == mask["frame_rule"]
    loaded = model_file.load(p.finetuned("shapft", 0, eps))
    keep = masks.keep_positions(mask)
    _, adaptive = hand_adaptive(loaded.module, keep, clean.model_input(), clean.labels, eps)
    score = entry["shapft"]["0"]
    assert score["adaptive"] == pytest.approx(adaptive, abs=1e-12)
    assert score["m"] == mask["m"]
    transferred = np.mean(metrics.predict_logits(loaded.module, attacked.model_input()[:, :, keep]).argmax(1)
                          == attacked.labels)
    assert score["attacked"] == pytest.approx(transferred, abs=1e-12)
    for method in defense_eval.METHODS:
        assert set(entry[method]) == {"0"}


def test_reproduce_micro_second_run_redoes_nothing(micro):
    lines = [line for line in micro.second.splitlines() if line.startswith("[")]
    assert lines == [line for line in lines if re.fullmatch(r"\[(\w+)\] done before \(\d+ s\), skipped", line)]
    assert [re.match(r"\[(\w+)\]", line).group(1) for line in lines] == list(reproduce.STAGES)
    assert "finished in" not in micro.second
    assert micro.after == micro.before                      # same files, same mtimes and sizes
    assert len(micro.before) > 40
