"""training.fit (loss, early stopping, resumable checkpoints, the loss hook),
metrics.accuracy_report, and the train/attack/evaluate commands end to end on
small synthetic SigMF recordings."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from gnuradio.shapft import attacks
from gnuradio.shapft.learn import metrics, training
from gnuradio.shapft.core import model_file, recording
import shapft_testing
from gnuradio.shapft.cli import main as shapft_main

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")
torch.set_num_threads(1)


def small_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(2, 16, 8, stride=4), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(),
                         nn.Linear(16 * 31, 11))


@pytest.fixture(scope="module")
def splits():
    return {"train": shapft_testing.tone_recording(6, [0, 10], seed=1), "val": shapft_testing.tone_recording(3, [0, 10], seed=2),
            "test": shapft_testing.tone_recording(3, [0, 10], seed=3)}


def xy(rec):
    return rec.model_input(), rec.labels


def test_training_lowers_the_loss_and_restores_the_best_epoch(splits):
    model = small_net(0)
    config = training.TrainConfig(epochs=8, batch_size=32, lr=3e-3, seed=0)
    result = training.fit(model, xy(splits["train"]), xy(splits["val"]), config, progress=False)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.history[-1]["train_acc"] > 0.5 and result.best_val_acc > 0.5
    best = min(result.history, key=lambda h: h["val_loss"])
    assert result.best_epoch == best["epoch"]
    x_val, y_val = xy(splits["val"])
    logits = torch.from_numpy(metrics.predict_logits(model, x_val))
    val_loss = nn.functional.cross_entropy(logits, torch.from_numpy(y_val)).item()
    assert val_loss == pytest.approx(result.best_val_loss, rel=1e-5)


def test_early_stopping_stops_when_validation_loss_stops_improving(splits):
    x_val, y_val = xy(splits["val"])
    shuffled = np.random.default_rng(0).permutation(y_val)   # unlearnable: val loss must rise
    config = training.TrainConfig(epochs=60, batch_size=32, lr=3e-3, patience=3, seed=0)
    model = small_net(0)
    result = training.fit(model, xy(splits["train"]), (x_val, shuffled), config, progress=False)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 3 < 60
    logits = torch.from_numpy(metrics.predict_logits(model, x_val))   # the best epoch's weights
    val_loss = nn.functional.cross_entropy(logits, torch.from_numpy(shuffled)).item()
    assert val_loss == pytest.approx(result.best_val_loss, rel=1e-5)
    assert val_loss < result.history[-1]["val_loss"]


def test_robust_selection_keeps_the_most_robust_epoch(splits, tmp_path):
    selection = training.RobustSelection(eps=0.1, steps=3, frames=40, seed=5)
    config = training.TrainConfig(epochs=6, batch_size=32, lr=3e-3, patience=50, seed=0)
    model = small_net(0)
    checkpoint = tmp_path / "robust.ckpt"
    result = training.fit(model, xy(splits["train"]), xy(splits["val"]), config, progress=False,
                          selection=selection, checkpoint_path=checkpoint)
    scores = [h["val_robust_acc"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmax(scores)) and result.best_score == max(scores)
    assert result.summary()["selection"]["criterion"] == "val_robust_acc"
    # The score by hand: PGD from the same start on the same 40 validation frames, the kept weights.
    x_val, y_val = xy(splits["val"])
    index = torch.randperm(len(y_val), generator=torch.Generator().manual_seed(5))[:40].sort().values.numpy()
    model.eval()
    attack = attacks.make("pgd", model, eps=0.1, steps=3, seed=5)
    adversarial = attack(torch.from_numpy(x_val[index]), torch.from_numpy(y_val[index]))
    by_hand = float(np.mean(metrics.predict_logits(model, adversarial.numpy()).argmax(axis=1) == y_val[index]))
    assert by_hand == pytest.approx(result.best_score)
    # A checkpoint is resumed only under the criterion it was made with.
    with pytest.raises(ValueError, match="selecting on robust validation accuracy .* not the validation loss"):
        training.fit(small_net(0), xy(splits["train"]), xy(splits["val"]), config, progress=False,
                     checkpoint_path=checkpoint)
    for bad in (dict(eps=0.0), dict(eps=0.1, steps=0), dict(eps=0.1, frames=2.5)):
        with pytest.raises(ValueError):
            training.RobustSelection(**bad)


def test_a_last_batch_of_one_frame_is_not_left_alone_with_batch_norm(splits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 16), nn.BatchNorm1d(16), nn.Linear(16, 11))
    x, y = xy(splits["train"])
    x, y = x[:129], y[:129]   # batches of 64, 64 and 1
    result = training.fit(model, (x, y), (x, y), training.TrainConfig(epochs=1, batch_size=64), progress=False)
    assert result.epochs_run == 1


def test_an_interrupted_run_resumes_and_reproduces_the_uninterrupted_one(splits, tmp_path):
    config = training.TrainConfig(epochs=6, batch_size=32, patience=50, seed=4)
    straight = small_net(0)
    full = training.fit(straight, xy(splits["train"]), xy(splits["val"]), config,
                        checkpoint_path=tmp_path / "straight.ckpt", progress=False)

    checkpoint = tmp_path / "interrupted.ckpt"
    first_half = training.TrainConfig(epochs=3, batch_size=32, patience=50, seed=4)
    training.fit(small_net(0), xy(splits["train"]), xy(splits["val"]), first_half,
                 checkpoint_path=checkpoint, progress=False)
    torch.manual_seed(123)   # the resumed run must not depend on the global RNG or the initial weights
    resumed_model = small_net(99)
    resumed = training.fit(resumed_model, xy(splits["train"]), xy(splits["val"]), config,
                           checkpoint_path=checkpoint, progress=False)

    assert resumed.resumed_from == 3 and resumed.epochs_run == 6
    strip = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    for a, b in zip(straight.state_dict().values(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    other = training.TrainConfig(epochs=6, batch_size=16, patience=50, seed=4)
    with pytest.raises(ValueError, match="batch_size 32 -> 16"):
        training.fit(small_net(0), xy(splits["train"]), xy(splits["val"]), other,
                     checkpoint_path=checkpoint, progress=False)


def test_a_loss_hook_can_craft_adversarial_examples_in_eval_mode(splits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 8, 8, stride=4), nn.BatchNorm1d(8), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 31, 11))
    fgsm = attacks.FGSM(model, eps=0.05)
    seen = []

    def adversarial_loss(model, x, y):
        running_mean = model[1].running_mean.clone()
        x_adv = fgsm(x, y)
        seen.append((model.training, torch.equal(running_mean, model[1].running_mean)))
        return nn.functional.cross_entropy(model(x_adv), y)

    result = training.fit(model, xy(splits["train"]), xy(splits["val"]),
                          training.TrainConfig(epochs=2, batch_size=64), loss_fn=adversarial_loss,
                          progress=False)
    assert seen and all(training_mode and unchanged for training_mode, unchanged in seen)
    assert all(h["train_acc"] is None for h in result.history)   # the hook returned no logits


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        training.TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr"):
        training.TrainConfig(lr=0)


def test_accuracy_report_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 2])
    snr = np.array([-10, 10, -10, 12, 12, np.nan])
    report = metrics.accuracy_report(labels, predictions, snr)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_snr"] == {"-10": 1.0, "10": 0.0, "12": 0.5}
    assert report["high_snr_accuracy"] == pytest.approx(1 / 3)
    assert report["confusion"][0][:3] == [1, 1, 0] and report["confusion"][2][:3] == [1, 0, 1]
    assert sum(map(sum, report["confusion"])) == 6
    json.dumps(report)


# ----- the commands end to end -----

def shapft(*argv):
    return shapft_main([str(a) for a in argv])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, splits):
    directory = tmp_path_factory.mktemp("data")
    for name, rec in splits.items():
        recording.write(directory / name, rec, f"synthetic tones, {name}")
    return directory


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "compact.pt"
    code = shapft("train", "--arch", "transformer_compact", "--data", dataset, "--out", out,
                  "--epochs", 2, "--batch-size", 64, "--seed", 5, "--threads", 1, "--quiet")
    assert code == 0
    return out


def test_train_exports_a_model_with_provenance_and_figures(trained, dataset):
    loaded = model_file.load(trained)
    assert loaded.arch == "transformer_compact" and loaded.frame_length == 128
    provenance = loaded.metadata["provenance"]
    assert provenance["seed"] == 5 and "--epochs 2" in provenance["command"]
    from gnuradio.shapft.core.artifacts import sha256_file
    assert provenance["data"]["train"]["data_sha256"] == sha256_file(dataset / "train.sigmf-data")
    summary = loaded.metadata["training"]
    assert summary["epochs_run"] == 2 and 0 <= summary["test_accuracy"] <= 1
    history = json.loads(trained.with_suffix(".training.json").read_text())
    assert [h["epoch"] for h in history["history"]] == [1, 2]
    for figure in ("training", "snr", "confusion", "confusion_high_snr"):
        assert trained.with_suffix(f".{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not trained.with_name(trained.name + ".ckpt").exists()


def test_attack_then_evaluate_agree(trained, dataset, tmp_path, capsys):
    out_dir = tmp_path / "adv"
    assert shapft("attack", "--model", trained, "--data", dataset / "test.sigmf-meta", "--method", "fgsm",
                  "--psr-db", -23, "--out", out_dir, "--quiet") == 0
    clean = recording.read(dataset / "test")
    attacked = recording.read(out_dir / "test")
    np.testing.assert_array_equal(attacked.labels, clean.labels)
    np.testing.assert_array_equal(attacked.snr_db, clean.snr_db)
    eps = attacked.info["attack"]["eps"]
    assert eps == pytest.approx(0.05, abs=1e-3) and attacked.info["attack"]["psr_db"] == pytest.approx(-23)
    assert attacked.info["attack"]["model_sha256"] == model_file.load(trained).sha256
    delta = attacked.model_input() - clean.model_input()
    np.testing.assert_allclose(np.abs(delta), eps, rtol=1e-4)

    report = tmp_path / "eval.json"
    assert shapft("evaluate", "--model", trained, "--data", dataset / "test.sigmf-meta",
                  "--attacks", f"fgsm:{eps!r}", "--json", report, "--figure", tmp_path / "snr.png",
                  "--quiet") == 0
    printed = capsys.readouterr().out
    assert "FGSM eps 0.05" in printed and "PSR -23.0 dB" in printed and "accuracy per SNR" in printed
    result = json.loads(report.read_text())
    assert shapft("evaluate", "--model", trained, "--data", out_dir / "test.sigmf-meta",
                  "--json", tmp_path / "attacked.json", "--quiet") == 0
    on_attacked_file = json.loads((tmp_path / "attacked.json").read_text())
    # attacking inside evaluate and evaluating the attacked recording give the same numbers
    assert result["attacks"][0]["accuracy"] == on_attacked_file["clean"]["accuracy"]
    assert result["attacks"][0]["per_snr"] == on_attacked_file["clean"]["per_snr"]
    assert (tmp_path / "snr.png").exists()


def test_commands_refuse_bad_input_in_one_line(trained, dataset, tmp_path, capsys):
    def fails(*argv, match):
        assert shapft(*argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, err

    test = dataset / "test.sigmf-meta"
    fails("attack", "--model", trained, "--data", test, "--method", "fgsm", "--eps", -0.1,
          "--out", tmp_path, match="eps must be a finite number >= 0")
    fails("evaluate", "--model", trained, "--data", test, "--attacks", "fgsm:-0.1", match="eps must be")
    fails("evaluate", "--model", trained, "--data", test, "--attacks", "cw:0.1", match="METHOD:EPS")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00" * 100)
    fails("evaluate", "--model", corrupt, "--data", test, match="not a TorchScript archive")
    fails("evaluate", "--model", tmp_path / "missing.pt", "--data", test, match="no such file")
    short = tmp_path / "short"
    rec = shapft_testing.tone_recording(1, [10], seed=7, length=64)
    recording.write(short, rec, "64-sample frames")
    fails("attack", "--model", trained, "--data", f"{short}.sigmf-meta", "--method", "fgsm", "--eps", 0.1,
          "--out", tmp_path / "x", match="frames of 64 samples, but the model takes 128")
    fails("attack", "--model", trained, "--data", test, "--method", "fgsm", "--eps", 0.1,
          "--out", dataset, match="overwrite the input")
    fails("attack", "--model", trained, "--data", test, "--method", "pgd", "--eps", 0.1, "--targeted",
          "--target-class", "QAM1024", "--out", tmp_path / "y", match="unknown modulation 'QAM1024'")
    fails("train", "--arch", "cnn_lstm", "--data", dataset, "--out", trained, match="exists")
    fails("train", "--arch", "cnn_lstm", "--data", tmp_path, "--out", tmp_path / "m.pt",
          match="no train.sigmf-meta")


# ----- adversarial training of a classifier to deploy -----

def test_fast_at_is_one_pgd_step_of_one_and_a_quarter_eps_from_a_random_start(splits):
    from gnuradio.shapft.attacks.training import fast_at_loss
    model = small_net(3).eval()   # no dropout: the same network twice
    x, y = (torch.from_numpy(a) for a in xy(splits["val"]))
    loss_fn = fast_at_loss(0.05, seed=2)
    loss, logits = loss_fn(model, x, y)
    expected = attacks.PGD(model, eps=0.05, steps=1, alpha=0.0625, seed=2)(x, y)
    assert torch.allclose(logits, model(expected), atol=1e-6)
    assert loss_fn.info()["method"] == "fast_at" and loss_fn.info()["step_size"] == pytest.approx(0.0625)


def test_trades_loss_is_clean_cross_entropy_plus_beta_kl_to_the_worst_example(splits):
    from gnuradio.shapft.attacks.training import TRADESLoss
    model = small_net(4).eval()   # eval: no dropout, so the hand computation sees the same network
    x, y = (torch.from_numpy(a) for a in xy(splits["val"]))
    loss_fn = TRADESLoss(0.05, steps=3, beta=2.0, seed=1)
    loss, clean = loss_fn(model, x, y)
    # by hand: 3 signed steps of 2.5 eps / 3 on KL from x + 0.001 N(0, 1), projected
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    x_adv = x + 0.001 * noise
    for _ in range(3):
        x_adv = x_adv.detach().requires_grad_(True)
        kl = torch.nn.functional.kl_div(torch.log_softmax(model(x_adv), 1), p, reduction="sum")
        (grad,) = torch.autograd.grad(kl, x_adv)
        x_adv = x + torch.clamp(x_adv.detach() + 0.05 * 2.5 / 3 * grad.sign() - x, -0.05, 0.05)
    with torch.no_grad():
        logits = model(x)
        expected = torch.nn.functional.cross_entropy(logits, y) + 2.0 * torch.nn.functional.kl_div(
            torch.log_softmax(model(x_adv), 1), torch.softmax(logits, 1), reduction="batchmean")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(clean, logits, atol=1e-6)
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6


def test_train_adversarially_from_a_model_file(trained, dataset, tmp_path):
    out = tmp_path / "robust.pt"
    code = shapft("train", "--arch", "transformer_compact", "--data", dataset, "--out", out, "--epochs", 1,
                  "--adversarial", "trades", "--adversarial-psr-db", -25, "--adversarial-steps", 2,
                  "--init", trained, "--lr", 1e-12, "--threads", 1, "--quiet")
    assert code == 0
    loaded = model_file.load(out)
    summary = loaded.metadata["training"]
    assert summary["adversarial"]["method"] == "trades" and summary["adversarial"]["steps"] == 2
    assert summary["adversarial"]["psr_db"] == pytest.approx(-25, abs=1e-3)
    assert summary["init_sha256"] == model_file.load(trained).sha256
    assert "--adversarial trades" in loaded.metadata["provenance"]["command"]
    # lr 1e-12: one epoch leaves the weights where --init put them
    start = model_file.load(trained).module.state_dict()
    for name, value in loaded.module.state_dict().items():
        assert torch.allclose(value, start[name], atol=1e-6), name
    assert shapft("train", "--arch", "cnn_lstm", "--data", dataset, "--out", tmp_path / "x.pt", "--epochs", 1,
                  "--init", trained, "--quiet") == 2
    assert shapft("train", "--arch", "transformer_compact", "--data", dataset, "--out", tmp_path / "y.pt",
                  "--adversarial", "fast_at", "--noise-psr-db", -20, "--quiet") == 2
