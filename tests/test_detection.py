"""Attack detection (SHAP-AFT's first stage): detector files, the detector networks,
training frames, the detector-aware attack, the ROC measures, and `shapft detector` /
`shapft detection` end to end on small data."""
import json

import numpy as np
import pytest
import torch

from gnuradio.shapft import attacks
from gnuradio.shapft.attacks.detector_aware import DetectorAwarePGD
from gnuradio.shapft.core import detector_file, model_file, recording
from gnuradio.shapft.learn import detection
from gnuradio.shapft.models import detector as detector_models
import shapft_testing

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small untrained CNN-LSTM, an untrained detector for it, and a dataset of tone
    frames (train, val, test) at two SNRs."""
    root = tmp_path_factory.mktemp("detection")
    shapft_testing.write_model(root / "model.pt")
    shapft_testing.write_detector(root / "detector.pt", root / "model.pt")
    for split, seed, per_class in (("train", 1, 3), ("val", 2, 5), ("test", 3, 3)):   # 110 val frames calibrate
        recording.write(root / "data" / split, shapft_testing.tone_recording(per_class, [0.0, 10.0], seed), split)
    return root


def test_detector_files_round_trip_and_refuse_the_other_kind(files, tmp_path):
    loaded = detector_file.load(files / "detector.pt")
    model = model_file.load(files / "model.pt")
    assert loaded.frame_length == 128
    assert loaded.protects == {"model": "model.pt", "sha256": model.sha256, "arch": "cnn_lstm"}
    assert loaded.metadata["score"] == detector_file.SCORE
    with torch.no_grad():
        assert loaded.module(torch.zeros(5, 2, 128)).shape == (5,)
    with pytest.raises(ValueError, match="is an attack detector, not a classifier"):
        model_file.load(files / "detector.pt")
    with pytest.raises(ValueError, match="is not an attack detector"):
        detector_file.load(files / "model.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not a detector")
    with pytest.raises(ValueError, match="not a TorchScript archive|cannot be loaded"):
        detector_file.load(corrupt)


def test_calibrated_threshold_gives_the_false_alarm_rate_on_its_clean_scores():
    scores = np.random.default_rng(0).standard_normal(20000)
    calibration = detector_file.calibration(scores)
    for rate in (0.01, 0.05, 0.2):
        threshold = detector_file.threshold_for(calibration, rate)
        assert np.mean(scores > threshold) == pytest.approx(rate, abs=0.002)
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="false_alarm_rate"):
            detector_file.threshold_for(calibration, bad)
    with pytest.raises(ValueError, match="at least 100 finite clean scores"):
        detector_file.calibration([0.0, np.nan] * 60)


@pytest.mark.parametrize("features", detector_models.FEATURES)
def test_detector_training_leaves_the_protected_classifier_untouched(features):
    classifier = shapft_testing.small_cnn_lstm(seed=1)
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    network = detector_models.AttackDetector(classifier, 11, features)
    network.train()
    assert not classifier.training   # batch norm statistics and dropout of the classifier: frozen
    x = torch.from_numpy(recording.to_model_input(shapft_testing.random_frames(40, seed=2)))
    y = torch.arange(40) % 2
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(network(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, value in classifier.state_dict().items():
        assert torch.equal(value, before[name]), name
    scripted = torch.jit.script(detector_models.Scorer(network.eval()))
    with torch.no_grad():
        logits = network(x)
        assert torch.allclose(scripted(x), logits[:, 1] - logits[:, 0], atol=1e-5)


def test_frame_statistics_are_papr_power_and_softmax_statistics():
    x = torch.zeros(1, 2, 4)
    x[0, 0] = torch.tensor([2.0, 0.0, 0.0, 0.0])       # power 4, 0, 0, 0: mean 1, peak 4
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    stats = detector_models.frame_statistics(x, logits)[0]
    p = torch.softmax(logits[0], 0)
    assert stats[0].item() == pytest.approx(np.log(4.0))
    assert stats[1].item() == pytest.approx(0.0, abs=1e-6)
    assert stats[2].item() == pytest.approx(p.max().item())
    assert stats[3].item() == pytest.approx(-(p * p.log()).sum().item(), rel=1e-5)
    assert stats[4].item() == pytest.approx(2.0)


def test_attacked_copies_are_the_library_attacks_at_the_drawn_budget():
    classifier = shapft_testing.small_cnn_lstm(seed=3).eval()
    x = recording.to_model_input(shapft_testing.random_frames(60, seed=5))
    labels = np.arange(60) % 11
    attacked, method_of, psr_of = detection.attacked_copies(classifier, x, labels, seed=4)
    assert set(method_of) == {0, 1} and set(psr_of) <= set(detection.TRAIN_PSRS)
    for m, name in enumerate(detection.TRAIN_ATTACKS):
        for psr in detection.TRAIN_PSRS:
            index = np.flatnonzero((method_of == m) & (psr_of == psr))
            if len(index) == 0:
                continue
            options = {"steps": detection.PGD_STEPS} if name == "pgd" else {}
            attack = attacks.make(name, classifier, psr_db=psr, seed=4 + m, **options)
            expected = attacks.attack_array(attack, x[index], labels[index])
            np.testing.assert_allclose(attacked[index], expected, atol=1e-6)
            eps = attack.eps
            assert np.abs(attacked[index] - x[index]).max() <= eps + 1e-6


def test_detector_aware_pgd_is_pgd_at_weight_zero_and_lowers_the_score_above_it():
    classifier = shapft_testing.small_cnn_lstm(seed=3).eval()
    torch.manual_seed(0)
    scorer = detector_models.Scorer(detector_models.AttackDetector(classifier, 11, "frames").eval())
    x = torch.from_numpy(recording.to_model_input(shapft_testing.random_frames(64, seed=6)))
    labels = torch.arange(64) % 11
    plain = attacks.PGD(classifier, psr_db=-15, steps=10, seed=2)(x, labels)
    at_zero = DetectorAwarePGD(classifier, scorer, weight=0.0, psr_db=-15, steps=10, seed=2)(x, labels)
    assert torch.allclose(plain, at_zero, atol=1e-6)
    aware = DetectorAwarePGD(classifier, scorer, weight=100.0, psr_db=-15, steps=10, seed=2)(x, labels)
    assert (aware - x).abs().max() <= plain.sub(x).abs().max() + 1e-6          # the same budget
    with torch.no_grad():
        assert (scorer(aware) < scorer(plain)).float().mean() > 0.9
    with pytest.raises(ValueError, match="weight must be >= 0"):
        DetectorAwarePGD(classifier, scorer, weight=-1, eps=0.1)
    with pytest.raises(ValueError, match="untargeted"):
        DetectorAwarePGD(classifier, scorer, eps=0.1, targeted=True)


def test_roc_auc_and_true_positive_rate_at_the_false_alarm_rate():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(1)
    clean, attacked = rng.standard_normal(4000), rng.standard_normal(4000) + 1.5
    result = detection.roc(clean, attacked)
    truth = np.r_[np.zeros(4000), np.ones(4000)]
    assert result["auc"] == pytest.approx(roc_auc_score(truth, np.r_[clean, attacked]))
    assert np.mean(clean > result["threshold"]) == pytest.approx(0.05, abs=0.001)
    assert result["tpr"] == pytest.approx(np.mean(attacked > result["threshold"]))
    assert detection.roc(clean, clean + 100)["auc"] == 1.0


def test_a_detector_learns_to_flag_fgsm_frames():
    # Gaussian frames against FGSM at -6 dB PSR: every component moved by +-eps
    classifier = shapft_testing.small_cnn_lstm(seed=3).eval()
    loaded = model_file.LoadedModel(torch.jit.script(classifier), {"classes": list(range(11)), "arch": "cnn_lstm",
                                                                    "frame_length": 128}, "0" * 64, "m.pt")
    sets = {}
    for name, seed in (("train", 1), ("val", 2)):
        x = recording.to_model_input(shapft_testing.random_frames(400, seed=seed))
        labels = np.arange(400) % 11
        attacked = attacks.attack_array(attacks.make("fgsm", classifier, psr_db=-6), x, labels)
        sets[name] = detection.labelled(x, attacked)
    network, result = detection.train(loaded, sets["train"], sets["val"], "frames", epochs=8, patience=8,
                                      progress=False)
    scores = detection.scores(detector_models.Scorer(network), sets["val"][0])
    y = sets["val"][1]
    assert detection.roc(scores[y == 0], scores[y == 1])["auc"] > 0.9
    assert result.best_val_loss < result.history[0]["val_loss"]


def test_cli_detector_and_detection_end_to_end(shapft, files, tmp_path):
    out = tmp_path / "det.pt"
    code, stdout, err = shapft("detector", "--model", files / "model.pt", "--data", files / "data", "--out", out,
                               "--features", "logits", "--epochs", 2, "--threads", 1, "--quiet")
    assert code == 0, err
    loaded = detector_file.load(out)
    assert loaded.metadata["features"] == "logits"
    assert loaded.protects["sha256"] == model_file.load(files / "model.pt").sha256
    assert loaded.metadata["training"]["attacks"] == ["fgsm", "pgd"]
    assert loaded.metadata["calibration"]["clean_frames"] == 110
    assert f"wrote {out}" in stdout and "ROC AUC" in stdout
    assert not (tmp_path / "det.pt.ckpt").exists()

    report = tmp_path / "report"
    code, stdout, err = shapft("detection", "--detector", out, "--model", files / "model.pt", "--data",
                               files / "data", "--out", report, "--psr-db", -20, -15, "--steps", 2,
                               "--frames", 0, "--threads", 1, "--quiet")
    assert code == 0, err
    results = json.loads((report / "detection.json").read_text())
    assert [(r["psr_db"], r["attack"]) for r in results["rows"]] == [
        (psr, name) for psr in (-20.0, -15.0) for name in ("fgsm", "pgd", "uap", "adaptive")]
    assert results["frames"] == 66
    for row in results["rows"]:
        assert 0 <= row["auc"] <= 1 and 0 <= row["tpr"] <= 1
        assert row["clean_frames"] == row["attacked_frames"] == 66   # SNR 0 and 10 dB: all frames
        assert set(row["by_snr"]) == {"0", "10"}
    # the adaptive attacker has plain PGD among its attempts: never weaker than it
    for psr in (-20.0, -15.0):
        row = {r["attack"]: r for r in results["rows"] if r["psr_db"] == psr}
        assert row["adaptive"]["accuracy"] <= row["pgd"]["accuracy"]
        assert row["adaptive"]["misclassified_undetected"] >= row["pgd"]["misclassified_undetected"]
    assert [row["psr_db"] for row in results["robust"]] == [-20.0, -15.0]
    for row in results["robust"]:
        assert 0 <= row["guarded"] <= 1 and 0 <= row["classifier"] <= 1
        # the classifier alone survives an attack only where it survives the weakest one, FGSM
        fgsm = next(r for r in results["rows"] if r["psr_db"] == row["psr_db"] and r["attack"] == "fgsm")
        assert row["classifier"] <= fgsm["accuracy"]
        # a frame any attack misclassifies without an alarm is lost to the guarded receiver
        assert row["guarded"] <= min(1 - r["misclassified_undetected"] for r in results["rows"]
                                     if r["psr_db"] == row["psr_db"]) + 1e-12
    assert (report / "detection_roc.png").stat().st_size > 0
    assert "| -20 | adaptive |" in (report / "detection.md").read_text()


def test_cli_detector_refuses_bad_input_in_one_line(shapft, files, tmp_path):
    out = tmp_path / "det.pt"
    base = ("detector", "--data", files / "data", "--out", out, "--quiet")
    code, _, err = shapft(*base, "--model", files / "detector.pt")
    assert code == 2 and "--model: model file" in shapft_testing.one_line_error(err, "detector")
    code, _, err = shapft(*base, "--model", files / "model.pt", "--frames", -1)
    assert code == 2 and "--frames: must be >= 0" in shapft_testing.one_line_error(err, "detector")
    code, _, err = shapft("detection", "--detector", files / "model.pt", "--model", files / "model.pt",
                          "--data", files / "data", "--out", tmp_path / "r", "--quiet")
    assert code == 2 and "--detector: detector file" in shapft_testing.one_line_error(err, "detection")
    assert not out.exists()
