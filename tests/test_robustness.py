"""`shapft robustness`, the leaderboard: the cascade and the threat models on toy models
whose robustness is known (a constant classifier, a gradient mask, a randomized
defence), the ordering of its columns, resuming after a lost result or Ctrl-C, bad
input, and the command end to end on small models."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import shapft_testing
from gnuradio.shapft.core import masks, model_file, perturbation_file, recording
from gnuradio.shapft.core.recording import Recording, to_model_input
from gnuradio.shapft.models import stochastic
from gnuradio.shapft.studies import robustness
from shapft_testing import one_line_error

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)

LENGTH = 32
NAN_AT = 7
CONSTANT_CLASS = 3
# small budgets of every attack: seconds per run on toy models
FAST = {"frames": 88, "pgd_steps": 5, "apgd_iterations": 10, "square_queries": 100, "uap_epochs": 1,
        "bootstrap": 200}
FAST_OPTIONS = ["--quick", "--frames", "88", "--pgd-steps", "5", "--apgd-iterations", "10",
                "--square-queries", "100", "--uap-epochs", "1", "--bootstrap", "200"]
LEVELS = [-20.0, -10.0]
SOURCE = Path(os.environ.get("SHAPFT_SOURCE_DIR", Path(__file__).resolve().parents[1]))


class Linear(nn.Module):
    """logits = W x (flattened frame), W standard normal: the toy data's labeller."""

    def __init__(self, seed):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(11, 2 * LENGTH, generator=generator))

    def forward(self, x):
        return x.flatten(1) @ self.weight.t()


class Rounded(nn.Module):
    """A gradient mask: the input rounded to a grid of step q (zero gradient everywhere)
    in front of the classifier."""

    def __init__(self, inner: nn.Module, q: float):
        super().__init__()
        self.inner, self.q = inner, q

    def forward(self, x):
        return self.inner(torch.round(x / self.q) * self.q)


class Constant(nn.Module):
    """Always class CONSTANT_CLASS, whatever the input: robust by construction."""

    def __init__(self):
        super().__init__()
        self.register_buffer("logits", 5.0 * nn.functional.one_hot(torch.tensor(CONSTANT_CLASS), 11).float())

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1) + 0.0 * x.sum(dim=(1, 2)).unsqueeze(1)


class GradientNoise(nn.Module):
    """A randomized defence: the classifier's logits, plus a term whose value is zero but
    whose gradient is a fresh random matrix (5 times the classifier's weights) at every
    pass, plus output noise too small to change a decision but enough that two passes
    differ. One draw's gradient mostly points nowhere; the mean over draws recovers the
    classifier's."""

    def __init__(self, inner: nn.Module, scale: float):
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x):
        flat = x.flatten(1)
        jitter = flat @ (self.scale * torch.randn(11, flat.shape[1])).t()
        return self.inner(x) + (jitter - jitter.detach()) + 1e-4 * torch.randn(x.shape[0], 11)


class Probabilities(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x), dim=1)


def save(module, path, length=LENGTH):
    module.eval()
    model_file.save(module, path, model_file.build_metadata(module, "toy", length, {"command": "a test"}))
    return path


@pytest.fixture(scope="module")
def toys(tmp_path_factory):
    """Toy model files and a recording of 176 random frames labelled by the linear model
    (at 0 and 10 dB SNR, alternately), so that the linear model is right on every frame,
    and an invalid frame (a NaN sample) at NAN_AT."""
    root = tmp_path_factory.mktemp("robustness")
    inner = Linear(4)
    save(inner, root / "linear.pt")
    save(Rounded(inner, 0.02), root / "rounded.pt")
    save(Constant(), root / "constant.pt")
    save(GradientNoise(inner, 5.0), root / "noisy.pt")
    save(Probabilities(inner), root / "probabilities.pt")
    frames = shapft_testing.random_frames(176, LENGTH, seed=1)
    with torch.no_grad():
        labels = inner(torch.from_numpy(to_model_input(frames))).argmax(dim=1).numpy()
    snr = np.where(np.arange(len(frames)) % 2, 10.0, 0.0)
    bad = frames[NAN_AT].copy()
    bad[5] = np.nan
    recording.write(root / "rec", Recording(np.insert(frames, NAN_AT, bad, axis=0), np.insert(labels, NAN_AT, 0),
                                            np.insert(snr, NAN_AT, 0.0)),
                    "random frames labelled by linear.pt, one NaN frame")
    recording.write(root / "short", shapft_testing.tone_recording(1, [10.0], seed=5, length=64), "64 samples")
    return root


def run(toys, out, models, levels=LEVELS, **settings):
    return robustness.run([toys / m for m in models], toys / "rec.sigmf-meta", out, levels,
                          robustness.make_settings(quick=True, **{**FAST, **settings}),
                          surrogate=toys / "linear.pt", progress=False, log=lambda text: None)


@pytest.fixture(scope="module")
def ranked(toys, tmp_path_factory):
    """The constant classifier and the gradient mask at -20 and -10 dB."""
    out = tmp_path_factory.mktemp("ranked")
    return out, run(toys, out, ["constant.pt", "rounded.pt"])


@pytest.fixture
def shipped_models(monkeypatch):
    """The default surrogates from this source tree's examples/models."""
    monkeypatch.setenv("SHAPFT_MODELS_DIR", str(SOURCE / "examples" / "models"))
    return SOURCE / "examples" / "models"


def rows_of(board, model):
    return {row["psr_db"]: row for row in board.rows if row["model"] == model}


def without_seconds(rows):
    return [{k: v for k, v in row.items() if k != "seconds_per_attack"} for row in rows]


def test_a_constant_classifier_is_as_robust_as_it_is_accurate(toys, ranked):
    _, board = ranked
    rows = rows_of(board, "constant.pt")
    assert sorted(rows) == LEVELS
    labels = np.delete(recording.read(toys / "rec.sigmf-meta").labels, NAN_AT)
    for row in rows.values():
        assert 0 < row["clean_accuracy"] < 0.5   # its one class, in a stratified subset
        assert abs(row["clean_accuracy"] - np.mean(labels == CONSTANT_CLASS)) < 0.1
        for value in [row["robust_accuracy"], row["robust_accuracy_l2"], *row["per_attack"].values(),
                      *row["per_attack_l2"].values()]:
            assert value == row["clean_accuracy"]
        assert row["eot_samples"] == 0 and row["mask_applied"] is None
        assert row["invalid_frames"] == {"nan": 1, "inf": 0, "zero": 0}   # skipped, counted


def test_a_gradient_mask_holds_against_gradients_but_not_square_or_transfer(ranked):
    _, board = ranked
    row = rows_of(board, "rounded.pt")[-20.0]
    clean, attack = row["clean_accuracy"], row["per_attack"]
    assert clean > 0.9
    assert attack["fgsm"] == clean              # sign(0) moves nothing
    assert attack["pgd"] > clean - 0.1          # only PGD's random start
    assert attack["apgd-ce"] > clean - 0.15
    assert row["robust_accuracy"] < clean - 0.4  # Square, which needs no gradient
    assert attack["transfer"] < clean - 0.4      # the unmasked classifier's PGD
    assert row["surrogate"] == "linear.pt"


def test_every_cascade_column_lies_between_robust_and_fgsm(ranked):
    _, board = ranked
    for row in board.rows:
        attack = row["per_attack"]
        columns = [row["robust_accuracy"], *(attack[name] for name in reversed(robustness.CASCADE)),
                   row["clean_accuracy"]]
        assert columns == sorted(columns), row["model"]
        assert row["robust_accuracy"] == attack["square"]
        l2 = [row["robust_accuracy_l2"], row["per_attack_l2"]["fgm"], row["clean_accuracy"]]
        assert l2 == sorted(l2)
        low, high = row["ci95"]
        assert low <= row["robust_accuracy"] <= high
        scored = sum(row["per_snr"][snr] * row["frames_per_snr"][snr] for snr in row["per_snr"])
        assert scored == pytest.approx(row["robust_accuracy"] * row["n_frames"])
        assert set(row["seconds_per_attack"]) == set(robustness.CASCADE + robustness.CASCADE_L2
                                                      + robustness.STANDALONE)


def test_the_outputs_rank_models_by_robust_accuracy(ranked):
    out, board = ranked
    assert json.loads((out / "leaderboard.json").read_text()) == json.loads(json.dumps(board.rows))
    table = (out / "leaderboard.md").read_text()
    assert table == board.table
    first = table.split("## PSR")[1]
    assert first.startswith(" -20 dB")
    models = [line.split("|")[1].strip() for line in first.splitlines() if line.startswith("| ") and ".pt" in line]
    assert models == ["rounded.pt", "constant.pt"]
    for name in ("robust_vs_psr.png", "robust_vs_snr.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    settings = json.loads((out / "settings.json").read_text())
    assert settings["settings"]["quick"] and settings["psr_db"] == LEVELS


def test_expectation_over_transformation_breaks_a_randomized_defence(toys, tmp_path):
    from gnuradio.shapft.studies.stages import classifier
    noisy, linear = (model_file.load(toys / name) for name in ("noisy.pt", "linear.pt"))
    x = to_model_input(shapft_testing.random_frames(4, LENGTH))
    assert stochastic.is_stochastic(classifier(noisy, LENGTH), x)
    assert not stochastic.is_stochastic(classifier(linear, LENGTH), x)

    single, = run(toys, tmp_path / "single", ["noisy.pt"], [-20.0], eot_samples=1).rows
    mean, = run(toys, tmp_path / "mean", ["noisy.pt"], [-20.0], eot_samples=16).rows
    assert (single["eot_samples"], mean["eot_samples"]) == (1, 16)
    assert single["clean_accuracy"] == mean["clean_accuracy"] > 0.9   # scored on the same seeded draws
    for name in ("fgsm", "pgd", "apgd-ce"):
        assert mean["per_attack"][name] < single["per_attack"][name] - 0.15, name
    assert mean["robust_accuracy_l2"] < single["robust_accuracy_l2"] - 0.15
    assert mean["robust_accuracy"] <= single["robust_accuracy"]


def test_a_smoothed_model_file_is_attacked_with_eot(toys, shapft, tmp_path):
    smoothed = tmp_path / "smoothed.pt"
    code, _, err = shapft("smooth", "--model", toys / "linear.pt", "--sigma-psr-db", -20, "--samples", 4,
                          "--out", smoothed)
    assert code == 0, err
    row, = run(toys, tmp_path / "board", [smoothed], [-20.0], eot_samples=2).rows
    assert row["arch"] == "smoothed(toy)" and row["eot_samples"] == 2
    assert row["clean_accuracy"] > 0.9            # noise 20 dB below the frames barely moves linear.pt
    assert row["robust_accuracy"] < row["clean_accuracy"] - 0.3


def test_a_lost_result_is_recomputed_alone_and_the_same(toys, ranked, tmp_path):
    out, board = ranked
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    rounded = model_file.load(toys / "rounded.pt")
    sha, key = rounded.sha256[:12], robustness.behaviour_sha256(rounded)[:12]
    lost = f"{key}_psr-20_apgd-ce.npz"
    (copy / "cache" / lost).unlink()
    damaged = copy / rows_of(board, "rounded.pt")[-10.0]["uap_files"]["uap"]
    damaged.write_bytes(b"not a perturbation")
    notes = []
    again = robustness.run([toys / "constant.pt", toys / "rounded.pt"], toys / "rec.sigmf-meta", copy, LEVELS,
                           robustness.make_settings(quick=True, **FAST), surrogate=toys / "linear.pt",
                           progress=False, log=notes.append)
    assert again.computed == [lost, f"{sha}_psr-10_uap.npz"]
    assert any(str(damaged) in note and "made again" in note for note in notes), notes
    assert perturbation_file.load(damaged)[1]["model_sha256"] == model_file.load(toys / "rounded.pt").sha256
    assert without_seconds(again.rows) == without_seconds(board.rows)
    unchanged = run(toys, copy, ["constant.pt", "rounded.pt"])
    assert unchanged.computed == [] and unchanged.reused == len(board.rows) * 10
    assert unchanged.rows == again.rows


def test_models_that_differ_only_in_metadata_share_their_attack_results(toys, ranked, tmp_path):
    out, board = ranked
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    rounded = model_file.load(toys / "rounded.pt")
    twin = model_file.save(rounded.module, tmp_path / "twin.pt", {**rounded.metadata, "provenance": {"command": "other"}})
    twin = model_file.load(tmp_path / "twin.pt")
    assert twin.sha256 != rounded.sha256
    assert robustness.behaviour_sha256(twin) == robustness.behaviour_sha256(rounded)
    assert robustness.behaviour_sha256(model_file.load(toys / "constant.pt")) != robustness.behaviour_sha256(rounded)
    notes = []
    both = robustness.run([toys / "constant.pt", toys / "rounded.pt", twin.path], toys / "rec.sigmf-meta", copy,
                          LEVELS, robustness.make_settings(quick=True, **FAST), surrogate=toys / "linear.pt",
                          progress=False, log=notes.append)
    # only the twin's universal perturbations, which are made per model file
    assert sorted(both.computed) == sorted(f"{twin.sha256[:12]}_psr{level:g}_{threat}.npz"
                                           for level in LEVELS for threat in ("uap", "uap-shift"))
    assert any("twin.pt: the same weights and deletion as rounded.pt" in note for note in notes), notes
    differ = ("model", "model_path", "model_sha256", "uap_files", "seconds_per_attack")
    for level in LEVELS:
        one, other = rows_of(both, "rounded.pt")[level], rows_of(both, "twin.pt")[level]
        assert {k: v for k, v in one.items() if k not in differ} == {k: v for k, v in other.items() if k not in differ}


def test_worker_processes_compute_the_same_leaderboard(toys, ranked, tmp_path):
    out, board = ranked
    parallel = robustness.run([toys / "constant.pt", toys / "rounded.pt"], toys / "rec.sigmf-meta", tmp_path, LEVELS,
                              robustness.make_settings(quick=True, **FAST), surrogate=toys / "linear.pt",
                              progress=False, log=lambda text: None, workers=2)
    assert without_seconds(parallel.rows) == without_seconds(board.rows)
    assert sorted(parallel.computed) == sorted(board.computed) and parallel.reused == board.reused == 0
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == sorted(board.computed)


def test_ctrl_c_leaves_no_partial_file_and_the_same_command_completes(toys, ranked, tmp_path):
    _, board = ranked
    out = tmp_path / "out"
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(robustness.__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "gnuradio.shapft.cli", "robustness", "--models", toys / "constant.pt",
               toys / "rounded.pt", "--data", toys / "rec.sigmf-meta", "--psr-db", "-20", "-10", "--out", out,
               "--surrogate", toys / "linear.pt", *FAST_OPTIONS, "--threads", "1", "--quiet"]
    process = subprocess.Popen([str(word) for word in command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "cache").glob("*.npz")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    err = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    assert code == 130 and err.rstrip().endswith("shapft robustness: interrupted"), err
    assert "Traceback" not in err
    left = sorted(path.name for path in out.rglob("*"))
    assert not [name for name in left if name.endswith(".tmp")], left
    cached = sorted(path.name for path in (out / "cache").glob("*.npz"))
    assert 0 < len(cached) < len(board.rows) * 10
    assert not (out / "leaderboard.json").exists()

    resumed = run(toys, out, ["constant.pt", "rounded.pt"])
    assert not set(resumed.computed) & set(cached)
    assert without_seconds(resumed.rows) == without_seconds(board.rows)


def test_other_settings_are_refused_and_force_starts_over(toys, tmp_path):
    first = run(toys, tmp_path, ["constant.pt"], [-20.0])
    record = (tmp_path / "settings.json").read_text()
    with pytest.raises(ValueError, match=r"--out .* holds results made with other settings.*--force"):
        run(toys, tmp_path, ["constant.pt"], [-20.0], seed=1)
    assert (tmp_path / "settings.json").read_text() == record
    # more models or budgets are the same settings: the run adds to the directory
    more = run(toys, tmp_path, ["constant.pt"], [-20.0, -30.0])
    assert len(more.computed) == len(first.computed) and all("psr-30" in name for name in more.computed)
    forced = robustness.run([toys / "constant.pt"], toys / "rec.sigmf-meta", tmp_path, [-20.0],
                            robustness.make_settings(quick=True, **{**FAST, "seed": 1}), surrogate=toys / "linear.pt",
                            force=True, progress=False, log=lambda text: None)
    assert sorted(forced.computed) == sorted(first.computed)
    assert not list((tmp_path / "cache").glob("*psr-30*"))
    assert json.loads((tmp_path / "settings.json").read_text())["settings"]["seed"] == 1


@pytest.mark.parametrize("change, message", [
    ({"--models": ["missing.pt"]}, "--models missing.pt: no such file"),
    ({"--models": ["rec.sigmf-meta"]}, "--models: model file rec.sigmf-meta is not a TorchScript archive"),
    ({"--models": ["probabilities.pt"]}, "--models probabilities.pt: returns probabilities"),
    ({"--models": ["linear.pt", "linear.pt"]}, "--models: linear.pt is given twice"),
    ({"--psr-db": ["-20", "abc"]}, "--psr-db: 'abc' is not a number"),
    ({"--psr-db": ["nan"]}, "--psr-db: 'nan' is not a finite number"),
    ({"--frames": ["0"]}, "--frames must be an integer >= 1, got 0"),
    ({"--invalid-frames": ["error"]}, f"--data rec.sigmf-meta: frame {NAN_AT} is invalid, NaN samples"),
    ({"--eot-samples": ["0"]}, "--eot-samples must be an integer >= 1, got 0"),
    ({"--workers": ["0"]}, "--workers must be an integer >= 1, got 0"),
    ({"--data": ["short.sigmf-meta"]}, "--data short.sigmf-meta (for --models linear.pt): frames of 64 samples, "
                                       "but the model takes 32"),
    ({"--frames": ["1000"]}, "--uap-data: every valid frame of --data rec.sigmf-meta is among the 176 evaluated"),
    ({"--surrogate": ["missing.pt"]}, "--surrogate missing.pt: no such file"),
    ({"--surrogate": None}, "--surrogate (default)"),   # the shipped cnn_lstm.pt takes 128 samples
    ({"--surrogate": ["linear.pt"]}, "--surrogate (default)"),   # never the attacked model itself
])
def test_bad_input_is_refused_in_one_line_naming_the_option(shapft, toys, tmp_path, monkeypatch, shipped_models,
                                                            change, message):
    monkeypatch.chdir(toys)
    options = {"--models": ["linear.pt"], "--data": ["rec.sigmf-meta"], "--psr-db": ["-20"],
               "--out": [str(tmp_path / "out")], "--surrogate": ["rounded.pt"], "--quick": [], "--frames": ["88"],
               "--quiet": []}
    options.update(change)
    words = [word for option, values in options.items() if values is not None for word in (option, *values)]
    code, _, err = shapft("robustness", *words)
    assert code == 2 and message in one_line_error(err, "robustness")
    assert not (tmp_path / "out" / "cache").exists()


def test_the_command_end_to_end(shapft, tmp_path, shipped_models):
    """A small CNN-LSTM, the same carrying a mask of 3 positions, and the shipped
    cnn_lstm.pt on tones of 128 samples, with the default surrogates: the shipped
    cnn_lstm.pt for the first two, transformer_compact_standard.pt for itself."""
    small = shapft_testing.write_model(tmp_path / "small.pt")
    mask = masks.make_mask([5, 60, 100], 128, "fgsm", 0.05, model_file.load(small).sha256)
    masked = shapft_testing.write_model(tmp_path / "masked.pt", frame_length=125, mask=mask, seed=3)
    recording.write(tmp_path / "tones", shapft_testing.tone_recording(2, [0.0, 10.0], seed=4), "tones")
    out = tmp_path / "out"
    code, stdout, err = shapft(
        "robustness", "--models", small, masked, shipped_models / "cnn_lstm.pt",
        "--data", tmp_path / "tones.sigmf-meta", "--psr-db", "-20", "--out", out, "--quick", "--frames", "22",
        "--pgd-steps", "2", "--apgd-iterations", "3", "--dlr-targets", "1", "--square-queries", "10",
        "--uap-epochs", "1", "--bootstrap", "100", "--quiet")
    assert code == 0, err
    assert "attack/s" not in err   # --quiet: no progress bars
    table = (out / "leaderboard.md").read_text()
    assert stdout.startswith(table) and "| model | clean | FGSM |" in table
    for name in ("leaderboard.json", "settings.json", "leaderboard.md", "robust_vs_psr.png", "robust_vs_snr.png"):
        assert str(out / name) in stdout
    rows = json.loads((out / "leaderboard.json").read_text())
    by_model = {row["model"]: row for row in rows}
    assert list(by_model) == ["small.pt", "masked.pt", "cnn_lstm.pt"] and len(rows) == 3
    assert [by_model[name]["surrogate"] for name in by_model] == [
        "cnn_lstm.pt", "cnn_lstm.pt", "transformer_compact_standard.pt"]
    assert by_model["masked.pt"]["mask_applied"] == 3 and by_model["small.pt"]["mask_applied"] is None
    for row in rows:
        assert row["n_frames"] == 22 and row["quick"] and row["eot_samples"] == 0 and row["psr_db"] == -20
        for threat in ("uap", "uap-shift"):
            perturbation, info = perturbation_file.load(out / row["uap_files"][threat])
            assert perturbation.shape == (2, 128) and np.abs(perturbation).max() <= row["eps"]
            assert info["random_shift"] == (threat == "uap-shift") and info["model_sha256"] == row["model_sha256"]
    settings = json.loads((out / "settings.json").read_text())
    assert settings["command"].startswith(f"shapft robustness --models {small} {masked} ")
    assert settings["versions"]["adversarial-robustness-toolbox"] == "1.20.1"


def test_help_names_every_option_and_the_quick_preset(shapft, capsys):
    from gnuradio.shapft.cli import main
    with pytest.raises(SystemExit) as done:
        main(["robustness", "--help"])
    text = " ".join(capsys.readouterr().out.split())   # as wrapped at any terminal width
    assert done.value.code == 0
    for option in ("--models", "--psr-db", "--quick", "--restarts", "--square-queries", "--eot-samples",
                   "--surrogate", "--uap-data", "--force", "--invalid-frames", "--quiet"):
        assert option in text
    assert "(default 100; --quick 50)" in text and "95 % intervals (default 1000)" in text
    assert "--workers" in text


def test_budgets_and_intervals():
    assert robustness.psr_levels(["-30", -20, "-22.5"]) == [-30.0, -20.0, -22.5]
    with pytest.raises(ValueError, match="--psr-db: -20 is given twice"):
        robustness.psr_levels([-20, "-20"])
    assert robustness.reference_psr([-30, -25, -15]) == -25
    assert robustness.reference_psr([-10, -19]) == -19
    correct = np.arange(400) % 2 == 0
    low, high = robustness.bootstrap_ci(correct, 1000, seed=3)
    assert low < 0.5 < high and high - low < 0.15
    assert robustness.bootstrap_ci(correct, 1000, seed=3) == [low, high]
    assert robustness.bootstrap_ci(np.ones(50, bool)) == [1.0, 1.0]
    quick, full = robustness.make_settings(quick=True), robustness.make_settings()
    assert quick.frames < full.frames and quick.square_queries < full.square_queries and quick.quick
    assert robustness.make_settings(quick=True, frames=500).frames == 500
