"""explain.py against shap.GradientExplainer itself: the same draws give the same values,
other draws give statistically the same values, and both satisfy completeness."""
import numpy as np
import pytest
import torch

from gnuradio.shapft.learn import explain
from gnuradio.shapft.core import model_file, recording
from gnuradio.shapft.models import CnnLstm
from gnuradio.shapft.core.radioml import CLASSES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)

LENGTH = 32          # short frames keep shap's per-sample Python loop fast
N_FRAMES = 4
N_BACKGROUND = 40


def small_model():
    torch.manual_seed(0)
    return torch.jit.script(CnnLstm(conv_channels=16, lstm_units=16, dense_units=32).eval())


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(1)
    background = torch.randn(N_BACKGROUND, 2, LENGTH, generator=generator)
    frames = torch.randn(N_FRAMES, 2, LENGTH, generator=generator)
    labels = torch.randint(0, len(CLASSES), (N_FRAMES,), generator=generator).numpy()
    return background, frames, labels


@pytest.mark.parametrize("n_background", [1, 7, 8, 4097])
def test_draws_are_numpys_global_choice_then_uniform_sequence(n_background):
    # what shap's loop does after np.random.seed(rseed), one frame after the other
    np.random.seed(5)
    expected = [(np.random.choice(n_background), np.random.uniform()) for _ in range(6 * 9)]
    draws = explain.shap_draws(6, 9, n_background, seed=5)
    np.testing.assert_array_equal(draws.background.ravel(), [row for row, _ in expected])
    np.testing.assert_array_equal(draws.alphas.ravel(), [alpha for _, alpha in expected])


def test_stratified_alphas_keep_shaps_rows_and_fill_one_stratum_each():
    shap_like, stratified = explain.draw(5, 8, 100, 3), explain.draw(5, 8, 100, 3, alphas="stratified")
    np.testing.assert_array_equal(stratified.background, shap_like.background)
    stratum = np.floor(stratified.alphas * 8)
    np.testing.assert_array_equal(stratum, np.tile(np.arange(8), (5, 1)))


@pytest.mark.parametrize("output", ["logit", "softmax"])
def test_same_seed_equals_shap_for_all_outputs(model, data, output):
    background, frames, _ = data
    # 47 interpolants per batch: batches straddle frames
    ours = explain.expected_gradients(model, background, frames, nsamples=30, seed=3,
                                      output=output, batch_size=47)
    reference = explain.shap_reference(model, background, frames, nsamples=30, seed=3, output=output)
    assert ours.values.shape == reference.values.shape == (N_FRAMES, 2, LENGTH, len(CLASSES))
    scale = np.abs(reference.values).max()
    assert scale > 0
    np.testing.assert_allclose(ours.values, reference.values, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_array_equal(ours.classes, np.tile(np.arange(len(CLASSES)), (N_FRAMES, 1)))


def test_per_frame_selection_equals_shaps_slice(model, data):
    background, frames, labels = data
    full = explain.shap_reference(model, background, frames, nsamples=30, seed=4)
    true = explain.expected_gradients(model, background, frames, outputs=labels[:, None],
                                      nsamples=30, seed=4)
    assert true.values.shape == (N_FRAMES, 2, LENGTH, 1)
    np.testing.assert_allclose(true.values[..., 0], full.values[np.arange(N_FRAMES), ..., labels],
                               rtol=1e-5, atol=1e-6 * np.abs(full.values).max())
    # "predicted" is shap's own ranked_outputs=1
    ours = explain.expected_gradients(model, background, frames, outputs="predicted", nsamples=30, seed=4)
    shaps = explain.shap_reference(model, background, frames, outputs="predicted", nsamples=30, seed=4)
    np.testing.assert_array_equal(ours.classes, shaps.classes)
    np.testing.assert_allclose(ours.values, shaps.values, rtol=1e-5,
                               atol=1e-6 * np.abs(shaps.values).max())


def test_class_list_selects_columns(model, data):
    background, frames, _ = data
    full = explain.expected_gradients(model, background, frames, nsamples=10, seed=2)
    picked = explain.expected_gradients(model, background, frames, outputs=[7, 2], nsamples=10, seed=2)
    np.testing.assert_array_equal(picked.values, full.values[..., [7, 2]])


@pytest.mark.parametrize("output", ["logit", "softmax"])
def test_other_seeds_agree_statistically_and_both_are_complete(model, data, output):
    background, frames, _ = data
    nsamples = 2000
    ours = explain.expected_gradients(model, background, frames, outputs="predicted", output=output,
                                      nsamples=nsamples, seed=21, alphas="stratified")
    reference = explain.shap_reference(model, background, frames, outputs="predicted", output=output,
                                       nsamples=nsamples, seed=22)
    np.testing.assert_array_equal(ours.classes, reference.classes)
    with torch.no_grad():
        score = explain.Scores(model, output)
        scores = score(frames) - score(background).mean(dim=0)   # f(x) - E[f(background)]
    target = scores.numpy()[np.arange(N_FRAMES), ours.classes[:, 0]]
    spread = np.sqrt(np.mean(target ** 2))
    for result in (ours, reference):
        completeness_error = result.values.sum(axis=(1, 2, 3)) - target
        assert np.sqrt(np.mean(completeness_error ** 2)) < 0.1 * spread
    ours_flat, reference_flat = ours.values.reshape(N_FRAMES, -1), reference.values.reshape(N_FRAMES, -1)
    assert np.abs(ours_flat.sum(1) - reference_flat.sum(1)).max() < 0.2 * spread
    for a, b in zip(ours_flat, reference_flat):
        assert np.corrcoef(a, b)[0, 1] > 0.95


def test_frames_and_background_of_other_lengths_are_refused(model, data):
    background, frames, _ = data
    with pytest.raises(ValueError, match=r"frames are shaped \(2, 16\) but the background is shaped \(2, 32\)"):
        explain.expected_gradients(model, background, frames[..., :16], nsamples=2)
    with pytest.raises(ValueError, match="class indices in 0..10"):
        explain.expected_gradients(model, background, frames, outputs=[11], nsamples=2)


# --- the command line -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small model file and background and data recordings of LENGTH-sample frames."""
    root = tmp_path_factory.mktemp("explain")
    torch.manual_seed(0)
    model = CnnLstm(conv_channels=16, lstm_units=16, dense_units=32)
    metadata = model_file.build_metadata(model, "cnn_lstm", LENGTH, provenance={"test": "explain"})
    model_file.save(model, root / "model.pt", metadata)
    rng = np.random.default_rng(2)

    def frames(n, length=LENGTH):
        samples = (rng.normal(size=(n, length)) + 1j * rng.normal(size=(n, length))) / np.sqrt(2)
        return recording.Recording(samples, rng.integers(0, len(CLASSES), n), np.zeros(n))

    recording.write(root / "background", frames(50), "background")
    recording.write(root / "data", frames(3), "data")
    recording.write(root / "short", frames(3, LENGTH // 2), "short frames")
    return root


def explain_args(files, out, *extra):
    return ("explain", "--model", files / "model.pt", "--background", files / "background.sigmf-meta",
            "--data", files / "data.sigmf-meta", "--out", out, "--background-size", 30,
            "--nsamples", 20, "--seed", 9, "--threads", 1, "--quiet", *extra)


def test_cli_writes_documented_npz(shapft, files, tmp_path):
    code, out, err = shapft(*explain_args(files, tmp_path / "all.npz"))
    assert code == 0, err
    assert "frames/s" in out
    saved = explain.load(tmp_path / "all.npz")
    assert set(saved) == set(explain.NPZ_ARRAYS) | set(explain.NPZ_FIELDS)
    assert saved["shap_values"].shape == (3, 2, LENGTH, len(CLASSES))
    np.testing.assert_array_equal(saved["frame_indices"], np.arange(3))
    background = saved["background_indices"]
    assert len(background) == 30 and len(np.unique(background)) == 30 and 0 <= background.min() \
        and background.max() < 50
    assert saved["draw_background"].shape == saved["draw_alphas"].shape == (3, 20)
    assert list(saved["class_names"]) == list(CLASSES)
    assert (saved["engine"], saved["outputs"], saved["nsamples"], saved["seed"]) == ("vectorised", "all", 20, 9)
    loaded = model_file.load(files / "model.pt")
    assert saved["model_sha256"] == loaded.sha256
    data = recording.read(files / "data.sigmf-meta")
    np.testing.assert_array_equal(saved["labels"], data.labels)
    np.testing.assert_array_equal(saved["predicted"], explain.predicted_classes(loaded.module, data.model_input()))

    # the true-class run explains the same draws, so it is the all-class run's slice
    code, _, err = shapft(*explain_args(files, tmp_path / "true.npz", "--outputs", "true"))
    assert code == 0, err
    true = explain.load(tmp_path / "true.npz")
    np.testing.assert_array_equal(true["output_classes"][:, 0], data.labels)
    np.testing.assert_allclose(true["shap_values"][..., 0],
                               saved["shap_values"][np.arange(3), ..., data.labels], rtol=1e-6, atol=1e-12)

    code, _, err = shapft(*explain_args(files, tmp_path / "predicted.npz", "--outputs", "predicted"))
    assert code == 0, err
    predicted = explain.load(tmp_path / "predicted.npz")
    np.testing.assert_array_equal(predicted["output_classes"][:, 0], saved["predicted"])
    np.testing.assert_allclose(predicted["shap_values"][..., 0],
                               saved["shap_values"][np.arange(3), ..., saved["predicted"]],
                               rtol=1e-6, atol=1e-12)

    # and shap itself, from the same command line, gives the same values
    code, _, err = shapft(*explain_args(files, tmp_path / "shap.npz", "--engine", "shap"))
    assert code == 0, err
    reference = explain.load(tmp_path / "shap.npz")
    assert reference["engine"] == "shap"
    np.testing.assert_allclose(saved["shap_values"], reference["shap_values"], rtol=1e-5,
                               atol=1e-6 * np.abs(reference["shap_values"]).max())


def test_cli_refuses_frames_of_the_wrong_length(shapft, files, tmp_path):
    args = list(explain_args(files, tmp_path / "x.npz"))
    args[args.index("--data") + 1] = files / "short.sigmf-meta"
    code, _, err = shapft(*args)
    assert code == 2
    assert f"--data {files / 'short.sigmf-meta'}: frames of {LENGTH // 2} samples, but the model takes {LENGTH}" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("extra, message", [
    (("--background-size", 51), "--background-size 51 exceeds the 50 frames of --background"),
    (("--nsamples", 0), "--nsamples must be >= 1, got 0"),
    (("--engine", "shap", "--alphas", "stratified"), "--alphas stratified needs --engine vectorised"),
])
def test_cli_refuses_bad_options(shapft, files, tmp_path, extra, message):
    code, _, err = shapft(*explain_args(files, tmp_path / "x.npz", *extra))
    assert code == 2 and message in err
    assert not (tmp_path / "x.npz").exists()


def test_cli_keeps_an_existing_output_without_force(shapft, files, tmp_path):
    (tmp_path / "x.npz").write_bytes(b"keep")
    code, _, err = shapft(*explain_args(files, tmp_path / "x.npz"))
    assert code == 2 and "exists; pass --force" in err
    assert (tmp_path / "x.npz").read_bytes() == b"keep"


def test_npz_records_skipped_invalid_frames_and_reads_files_written_without_them(files, tmp_path):
    from gnuradio.shapft.learn.explain import NPZ_OPTIONAL_ARRAYS
    loaded = model_file.load(files / "model.pt")
    data = recording.read(files / "data.sigmf-meta")
    background = recording.read(files / "background.sigmf-meta")
    result = explain.expected_gradients(loaded.module, background.model_input(), data.model_input(),
                                        outputs=data.labels[:, None], nsamples=2)
    common = dict(frame_indices=[0, 2, 3], background_indices=np.arange(len(background)), labels=data.labels,
                  predicted=data.labels, class_names=CLASSES, engine="vectorised", outputs="true",
                  output="softmax", alphas="shap", nsamples=2, seed=0, model_sha256="m", data_sha256="d",
                  background_sha256="b")
    explain.save(tmp_path / "skipped.npz", result, **common, invalid={1: "nan"}, background_invalid={7: "zero"})
    saved = explain.load(tmp_path / "skipped.npz")
    assert saved["invalid_indices"].tolist() == [1] and saved["invalid_reasons"].tolist() == ["nan"]
    assert saved["background_invalid_indices"].tolist() == [7]
    assert saved["background_invalid_reasons"].tolist() == ["zero"]
    # a file without the arrays (written before they existed) reads as "nothing skipped"
    with np.load(tmp_path / "skipped.npz") as npz:
        older = {name: npz[name] for name in npz.files if name not in NPZ_OPTIONAL_ARRAYS}
    np.savez(tmp_path / "older.npz", **older)
    content = explain.load(tmp_path / "older.npz")
    for name in NPZ_OPTIONAL_ARRAYS:
        assert len(content[name]) == 0
