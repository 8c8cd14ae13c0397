"""Negative points and the mask (masks.py, `shapft mask`), the SHAP-FT stage after
`shapft explain`: the frame rule, the summed Shapley values, the mask object and
its file, and the command that derives it.

Hand-made Shapley values with known negative points drive the mask.
"""
import json
import math
import types

import numpy as np
import pytest
import torch

from gnuradio.shapft.core import budget, model_file, masks
from gnuradio.shapft.learn import explain
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


def spread(values):
    out = np.zeros(values.shape[:-1] + (128,))
    out[..., POSITIONS] = values
    return out


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
    # JSON true/false pass `isinstance(i, int)`: {"drop": [false, true]} must not be
    # taken as positions 0 and 1, nor "frame_length": true as 1.
    for mask in ({"frame_length": 8, "drop": [False, True]}, {"frame_length": True, "drop": []}):
        try:
            masks.validate(mask, "my.json")
        except ValueError:
            continue
        pytest.fail(f"masks.validate accepts JSON booleans as integers: {mask}")


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
    """The original (small, untrained) CNN-LSTM and its SHAP values."""
    root = tmp_path_factory.mktemp("masks")
    shapft_testing.write_model(root / "original.pt")
    sha = model_file.load(root / "original.pt").sha256
    write_shap_npz(root / "shap.npz", sha)
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
    assert code == 2 and "--shap" in shapft_testing.one_line_error(err, "mask") and "no such file" in err
    code, _, err = shapft("mask", "--shap", files / "shap.npz", "--eps", -0.1, "--out", out)
    assert code == 2 and "eps must be a finite number >= 0, got -0.1" in shapft_testing.one_line_error(err, "mask")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    code, _, err = shapft("mask", "--shap", tmp_path / "junk.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "cannot be read" in shapft_testing.one_line_error(err, "mask")
    write_shap_npz(tmp_path / "no_true.npz", "0" * 64, true_class=False)
    code, _, err = shapft("mask", "--shap", tmp_path / "no_true.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "--outputs true" in shapft_testing.one_line_error(err, "mask")
    write_shap_npz(tmp_path / "all_right.npz", "0" * 64, predicted=HAND_LABELS)
    code, _, err = shapft("mask", "--shap", tmp_path / "all_right.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "rule 'error' selects no frames" in shapft_testing.one_line_error(err, "mask")
    assert not out.exists()
    # ... and the same file with all frames is fine (they are all classified right at eps 0.05)
    code, _, err = shapft("mask", "--shap", tmp_path / "all_right.npz", "--eps", 0.05, "--out", out)
    assert code == 0, err
    assert masks.load(out)["drop"] == ALL_DROP

    # an existing mask is kept unless --force
    before = out.read_bytes()
    code, _, err = shapft("mask", "--shap", files / "shap.npz", "--eps", 0.1, "--out", out)
    assert code == 2 and "exists; pass --force to overwrite" in shapft_testing.one_line_error(err, "mask")
    assert out.read_bytes() == before
    code, _, err = shapft("mask", "--shap", files / "shap.npz", "--eps", 0.1, "--out", out, "--force")
    assert code == 0, err
    assert masks.load(out)["drop"] == ERROR_DROP
