"""Randomized smoothing (learn/smoothing.py): noise units, the counts, PREDICT's abstention,
CERTIFY's radius against Cohen et al.'s formula, and the noise-augmented training loss."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from gnuradio.shapft.core import budget
from gnuradio.shapft.learn import smoothing

torch.set_num_threads(1)


class Constant(torch.nn.Module):
    """Always class `index` of 4."""

    def __init__(self, index):
        super().__init__()
        self.index = index

    def forward(self, x):
        logits = torch.zeros(len(x), 4)
        logits[:, self.index] = 1.0
        return logits


class SignOfFirstSample(torch.nn.Module):
    """Class 1 where the first I sample is positive, else class 0: under noise of std sigma
    a frame whose first sample is a is class 1 with probability Phi(a / sigma)."""

    def forward(self, x):
        first = x[:, 0, 0]
        return torch.stack([-first, first, torch.full_like(first, -1e9), torch.full_like(first, -1e9)], dim=1)


def test_noise_psr_and_radius_psr_follow_the_budget_units():
    sigma = smoothing.sigma_from_psr_db(-20)
    assert 10 * math.log10(2 * sigma ** 2) == pytest.approx(-20)
    assert smoothing.radius_psr_db(math.sqrt(128 * 10 ** -2.5), 128) == pytest.approx(-25)
    assert smoothing.radius_psr_db(1.0, 128) == budget.eps_to_psr_db(1.0, "l2", 128)


def test_a_noise_psr_without_a_usable_noise_level_is_refused():
    for psr_db in (float("nan"), float("inf"), 4000.0, -4000.0):
        with pytest.raises(ValueError, match=r"^must give a noise level > 0 that a float holds, got .* dB$"):
            smoothing.sigma_from_psr_db(psr_db)


def test_counts_and_noise_are_those_of_the_generator():
    x = torch.zeros(3, 2, 8)
    x[0, 0, 0], x[1, 0, 0], x[2, 0, 0] = 5.0, -5.0, 0.0
    counts = smoothing.class_counts(SignOfFirstSample(), x, 1.0, 2000, 4, torch.Generator().manual_seed(0), 500)
    assert counts.sum(axis=1).tolist() == [2000, 2000, 2000]
    assert counts[0, 1] == 2000 and counts[1, 0] == 2000          # 5 sigma away: never flips
    assert abs(counts[2, 1] - 1000) < 4 * math.sqrt(500)           # on the boundary: half and half
    again = smoothing.class_counts(SignOfFirstSample(), x, 1.0, 2000, 4, torch.Generator().manual_seed(0), 2000)
    np.testing.assert_array_equal(counts, again)                    # batch size does not change the draws' use


def test_predict_abstains_on_the_boundary_only():
    x = torch.zeros(2, 2, 8)
    x[0, 0, 0] = 3.0
    predicted = smoothing.predict(SignOfFirstSample(), x, 1.0, 1000, 4, alpha=0.001)
    assert predicted.tolist() == [1, smoothing.ABSTAIN]


def test_certify_radius_is_sigma_times_the_normal_quantile_of_the_lower_bound():
    x = torch.zeros(4, 2, 8)
    sigma, n, alpha = 0.5, 1000, 0.001
    predicted, radius = smoothing.certify(Constant(2), x, sigma, 10, n, 4, alpha=alpha)
    # every sample is class 2: the one-sided Clopper-Pearson bound is alpha ** (1 / n)
    p_lower = alpha ** (1 / n)
    assert predicted.tolist() == [2] * 4
    np.testing.assert_allclose(radius, sigma * stats.norm.ppf(p_lower), rtol=1e-9)
    # a frame on the boundary is not certified
    x[:, 0, 0] = torch.tensor([2.0, 0.0, 0.5, -2.0])
    predicted, radius = smoothing.certify(SignOfFirstSample(), x, 1.0, 100, 4000, 4, alpha=alpha)
    assert predicted[1] == smoothing.ABSTAIN and radius[1] == 0
    assert predicted[0] == 1 and predicted[3] == 0
    # the certified radius never exceeds the true one (|a|: the base classifier's boundary)
    assert radius[0] <= 2.0 and radius[3] <= 2.0 and radius[0] > 1.0
    assert smoothing.certified_accuracy(predicted, radius, [1, 1, 1, 0], [0.0, 1.0, 5.0]) == [
        float(np.mean((predicted == [1, 1, 1, 0]) & (radius >= r))) for r in (0.0, 1.0, 5.0)]


def test_gaussian_noise_loss_is_cross_entropy_on_noisy_frames():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    x, y = torch.randn(5, 2, 8), torch.arange(5) % 4
    loss_fn = smoothing.GaussianNoiseLoss(0.3, seed=4)
    loss, logits = loss_fn(model, x, y)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4)) * 0.3
    expected = model(x + noise)
    assert torch.allclose(logits, expected) and loss.item() == pytest.approx(
        torch.nn.functional.cross_entropy(expected, y).item())
    assert loss_fn.info()["psr_db"] == pytest.approx(10 * math.log10(2 * 0.09))
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        smoothing.GaussianNoiseLoss(0)


def test_cli_train_with_noise_and_certify(shapft, tmp_path):
    import json
    from gnuradio.shapft.core import model_file, recording
    import shapft_testing
    data = tmp_path / "data"
    for split, seed in (("train", 1), ("val", 2), ("test", 3)):
        recording.write(data / split, shapft_testing.tone_recording(2, [0.0, 12.0], seed), split)
    out = tmp_path / "noisy.pt"
    code, _, err = shapft("train", "--arch", "transformer_compact", "--data", data, "--out", out, "--epochs", 2,
                          "--noise-psr-db", -15, "--threads", 1, "--quiet")
    assert code == 0, err
    training = model_file.load(out).metadata["training"]
    assert training["noise"]["method"] == "gaussian_noise"
    assert training["noise"]["psr_db"] == pytest.approx(-15)
    assert "--noise-psr-db -15" in model_file.load(out).metadata["provenance"]["command"]

    report = tmp_path / "certify"
    code, stdout, err = shapft("certify", "--model", out, "--data", data / "test.sigmf-meta", "--out", report,
                               "--sigma-psr-db", -15, "--n", 60, "--n0", 10, "--frames", 0, "--threads", 1,
                               "--quiet")
    assert code == 0, err
    results = json.loads((report / "certify.json").read_text())
    assert results["all"]["frames"] == 44 and results["high_snr"]["frames"] == 22
    frames = results["per_frame"]
    radius = np.array(frames["radius"])
    predicted = np.array(frames["predicted"])
    assert ((radius > 0) == (predicted != smoothing.ABSTAIN)).all()
    # with n = 60 and alpha 0.001 the largest possible bound is 0.001 ** (1 / 60)
    assert radius.max() <= results["sigma"] * stats.norm.ppf(0.001 ** (1 / 60)) + 1e-9
    curve = results["all"]["certified_accuracy"]
    assert curve == sorted(curve, reverse=True)            # fewer frames certified at larger radii
    assert (report / "certified_accuracy.png").stat().st_size > 0
    assert "certified at PSR -25 dB" in stdout
    code, _, err = shapft("certify", "--model", out, "--data", data / "test.sigmf-meta", "--out", report,
                          "--sigma-psr-db", -15, "--n", 0, "--quiet")
    assert code == 2 and "--n: must be >= 1" in err
    code, _, err = shapft("certify", "--model", out, "--data", data / "test.sigmf-meta", "--out", report,
                          "--sigma-psr-db", 4000, "--quiet")
    assert code == 2 and "--sigma-psr-db: must give a noise level > 0" in err
    code, _, err = shapft("train", "--arch", "transformer_compact", "--data", data, "--out", tmp_path / "x.pt",
                          "--epochs", 1, "--noise-psr-db", -4000, "--threads", 1, "--quiet")
    assert code == 2 and "--noise-psr-db: must give a noise level > 0" in err


class Recorder(torch.nn.Module):
    """Logits from the first 4 I samples, keeping the input it was given."""

    def forward(self, x):
        self.seen = x.clone()
        return x[:, 0, :4]


def test_smoothed_classifier_averages_softmax_over_noisy_copies():
    from gnuradio.shapft.models.smoothed import SmoothedClassifier
    x = torch.randn(3, 2, 64)
    base = Recorder()
    smoothed = SmoothedClassifier(base, sigma=0.5, samples=400)
    out = smoothed(x)
    assert base.seen.shape == (1200, 2, 64)
    noise = base.seen - x.repeat(400, 1, 1)        # draw-major copies of the 3 frames
    assert float(noise.std()) == pytest.approx(0.5, rel=0.02)
    assert abs(float(noise.mean())) < 0.01
    expected = torch.log(torch.softmax(base.seen[:, 0, :4], dim=1).view(400, 3, 4).mean(dim=0))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(smoothed(x), out)        # fresh noise on every pass
    constant = SmoothedClassifier(Constant(2), sigma=3.0, samples=5)(x)
    torch.testing.assert_close(constant, torch.log_softmax(Constant(2)(x), dim=1))
    for bad in (dict(sigma=0.0, samples=4), dict(sigma=float("nan"), samples=4), dict(sigma=1.0, samples=0)):
        with pytest.raises(ValueError):
            SmoothedClassifier(base, **bad)


def test_cli_smooth_writes_a_model_file_behind_the_deletion(shapft, tmp_path):
    from gnuradio.shapft.core import masks, model_file
    from gnuradio.shapft.models import stochastic
    import shapft_testing
    mask = masks.make_mask([3, 17, 90], 128, "fgsm", 0.1, "0" * 64)
    base = shapft_testing.write_model(tmp_path / "base.pt", mask=mask)
    out = tmp_path / "smoothed.pt"
    code, stdout, err = shapft("smooth", "--model", base, "--sigma-psr-db", -6, "--samples", 4, "--out", out)
    assert code == 0, err
    assert "smoothed(cnn_lstm), noise PSR -6 dB" in stdout
    loaded, original = model_file.load(out), model_file.load(base)
    assert (loaded.arch, loaded.frame_length, loaded.mask) == ("smoothed(cnn_lstm)", 128, None)
    record = loaded.metadata["smoothing"]
    assert record["base_sha256"] == original.sha256 and record["base_mask"]["drop"] == [3, 17, 90]
    assert record["base_provenance"] == original.metadata["provenance"]
    assert loaded.metadata["provenance"]["command"].startswith("shapft smooth --model ")
    assert record["sigma"] == pytest.approx(smoothing.sigma_from_psr_db(-6)) and record["samples"] == 4
    x = to_model_input_frames(6)
    assert stochastic.is_stochastic(loaded.module, x)
    # A tiny noise level: the smoothed model is the base behind its deletion.
    code, _, err = shapft("smooth", "--model", base, "--sigma-psr-db", -150, "--samples", 2, "--out", out, "--force")
    assert code == 0, err
    with torch.no_grad():
        keep = torch.as_tensor(masks.keep_positions(mask))
        expected = torch.log_softmax(original.module(torch.from_numpy(x)[:, :, keep]), dim=1)
        torch.testing.assert_close(model_file.load(out).module(torch.from_numpy(x)), expected, rtol=1e-4, atol=1e-5)
    # Smoothed at other settings: the leaderboard's key for what a model computes (its
    # graph and state) tells them apart, so they share no cached attack results.
    from gnuradio.shapft.studies.robustness import behaviour_sha256
    for name, psr, samples in (("a.pt", -6, 4), ("c.pt", -10, 4), ("d.pt", -6, 8)):
        code, _, err = shapft("smooth", "--model", base, "--sigma-psr-db", psr, "--samples", samples,
                              "--out", tmp_path / name)
        assert code == 0, err
    models = [model_file.load(tmp_path / name) for name in ("a.pt", "c.pt", "d.pt")]
    assert len({behaviour_sha256(m) for m in models}) == 3
    assert [float(m.module.sigma) for m in models] == pytest.approx([smoothing.sigma_from_psr_db(p) for p in (-6, -10, -6)])
    assert [int(m.module.samples) for m in models] == [4, 4, 8]
    for args, message in ((("--samples", 0), "--samples: must be >= 1, got 0"),
                          (("--sigma-psr-db", "nan"), "--sigma-psr-db: must give a noise level > 0"),
                          (("--sigma-psr-db", 4000), "--sigma-psr-db: must give a noise level > 0"),
                          (("--sigma-psr-db", -4000), "--sigma-psr-db: must give a noise level > 0"),
                          (("--model", out), "already a smoothed model")):
        options = {"--model": base, "--sigma-psr-db": -6, "--out": tmp_path / "again.pt", "--samples": 4}
        options.update(zip(args[::2], args[1::2]))
        code, _, err = shapft("smooth", *[v for pair in options.items() for v in pair])
        assert code == 2 and message in err, err


def to_model_input_frames(n):
    from gnuradio.shapft.core.recording import to_model_input
    import shapft_testing
    return to_model_input(shapft_testing.random_frames(n, seed=4))
