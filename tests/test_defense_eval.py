"""The defence evaluation (defense_eval.py): clean, transferred and adaptive accuracy
of a fine-tuned model, the adaptive attack going through the mask's deletion, and
the mean and spread over seeds.

The adaptive attack is checked against FGSM on masked.MaskedClassifier computed here.
"""
import numpy as np
import pytest
import torch

from gnuradio.shapft import attacks
from gnuradio.shapft.core import model_file, masks, recording
from gnuradio.shapft.studies import defense_eval
from gnuradio.shapft.learn import metrics
import shapft_testing

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
torch.set_num_threads(1)


# --- defense_eval: clean, transferred and adaptive accuracy ---------------------------------



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

    x_adv, adaptive = shapft_testing.hand_adaptive(loaded.module, keep, x, labels, eps)
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
