"""Attention-based adversarial robust distillation (distill.py, `shapft distill`):
the attention maps the loss uses are the models' own, the attention term vanishes
exactly when the matched maps agree, the losses stay float32 under bf16 autocast, the
distillation loss falls on a micro run, the exported student runs inside a GNU Radio
flowgraph through classifier_sink, and the command runs end to end (also in bf16),
resumes and refuses changed settings."""
import copy
import json

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, gr

from gnuradio.shapft.learn import distill, training
from gnuradio.shapft.core import model_file, recording
from gnuradio.shapft import models
from gnuradio.shapft.models import precision
from gnuradio.shapft.studies import distill as study
import shapft_testing
from gnuradio.shapft.blocks.classifier_sink import classifier_sink
from gnuradio.shapft.models.transformer import IQTransformer

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated:DeprecationWarning")
torch.set_num_threads(1)


def xy(rec):
    return rec.model_input(), rec.labels


def small_teacher(seed=0):
    """A 3-layer, 8-head transformer: deeper and with more heads than the compact student,
    so layer matching (student 0 <- 1, 1 <- 2) and head reduction are exercised."""
    torch.manual_seed(seed)
    return IQTransformer(dim=32, depth=3, heads=8, mlp_dim=64)


@pytest.fixture(scope="module")
def data():
    return {"train": shapft_testing.tone_recording(10, [0, 10], seed=1), "val": shapft_testing.tone_recording(3, [0, 10], seed=2),
            "test": shapft_testing.tone_recording(3, [0, 10], seed=3)}


@pytest.fixture(scope="module")
def trained_teacher(data):
    teacher = small_teacher()
    config = training.TrainConfig(epochs=4, batch_size=40, lr=3e-3, seed=0)
    training.fit(teacher, xy(data["train"]), xy(data["val"]), config, progress=False)
    return teacher.eval()


def frames_x(n=6, seed=0):
    return torch.from_numpy(recording.to_model_input(shapft_testing.random_frames(n, seed=seed)))


# ----------------------------------------------------------------------------- layer matching

def test_layer_matching_follows_relative_depth():
    assert distill.match_layers(2, 6) == [2, 5]          # the compact student <- the large teacher
    assert distill.match_layers(6, 6) == list(range(6))
    assert distill.match_layers(2, 3) == [1, 2]
    assert distill.match_layers(4, 6) == [1, 2, 4, 5]
    assert distill.match_layers(3, 2) == [0, 0, 1]
    with pytest.raises(ValueError, match="student_depth"):
        distill.match_layers(0, 6)


# ----------------------------------------------------------------------------- attention maps

@pytest.mark.parametrize("arch, heads, depth", [("transformer_compact", 4, 2), ("transformer_large", 8, 6)])
def test_attention_maps_are_the_models_own(arch, heads, depth):
    torch.manual_seed(1)
    model = models.build(arch).eval()
    x = frames_x(5)
    logits, maps = distill.attention_maps(model, x)
    own_logits, own_maps = model.forward_with_attention(x)
    assert torch.equal(logits, own_logits) and torch.equal(logits, model(x))
    assert len(maps) == depth
    scripted = torch.jit.script(model)
    scripted_logits, scripted_maps = distill.attention_maps(scripted, x)
    assert torch.allclose(scripted_logits, logits, atol=1e-5)
    for layer, (m, own, s) in enumerate(zip(maps, own_maps, scripted_maps)):
        assert m.shape == (5, heads, 17, 17)
        assert torch.equal(m, own)
        assert torch.allclose(m.sum(dim=-1), torch.ones(5, heads, 17), atol=1e-5)
        assert (m >= 0).all()
        assert torch.allclose(s, m, atol=1e-5), f"scripted layer {layer} differs"
    # Different frames give different maps: the maps depend on the input.
    assert not torch.allclose(distill.attention_maps(model, frames_x(5, seed=9))[1][0], maps[0])


def test_the_loss_uses_the_maps_both_models_compute(trained_teacher):
    torch.manual_seed(2)
    student = models.build("transformer_compact").eval()   # eval: no dropout, deterministic
    loss = distill.AttentionARDLoss(trained_teacher, eps=0.05, steps=2, temperature=4, alpha=0.9,
                                    attention_weight=2.0)
    x, y = frames_x(8), torch.arange(8) % 11
    out = loss.terms(student, x, y)
    x_adv = out["x_adv"]
    assert not torch.equal(x_adv, x) and (x_adv - x).abs().max() <= 0.05 + 1e-6
    with torch.no_grad():
        s_logits, s_maps = student.forward_with_attention(x_adv)
        t_logits_adv, t_maps = trained_teacher.forward_with_attention(x_adv)
        t_logits_clean = trained_teacher(x)
    assert [m.shape for m in out["student_maps"]] == [(8, 4, 17, 17)] * 2
    assert [m.shape for m in out["teacher_maps"]] == [(8, 8, 17, 17)] * 3
    for mine, own in zip(out["student_maps"], s_maps):
        assert torch.allclose(mine, own, atol=1e-6)
        assert torch.allclose(mine.sum(-1), torch.ones_like(mine[..., 0]), atol=1e-5)
    for mine, own in zip(out["teacher_maps"], t_maps):     # teacher maps on the same x'
        assert torch.allclose(mine, own, atol=1e-5)
    assert torch.allclose(out["student_adv_logits"], s_logits, atol=1e-6)
    assert torch.allclose(out["teacher_logits"], t_logits_clean, atol=1e-5)   # ARD: teacher on clean x
    expected_attention = distill.attention_distance(s_maps, t_maps)
    assert out["attention"].item() == pytest.approx(expected_attention.item(), rel=1e-5)
    expected = 0.9 * out["kd"] + 0.1 * out["ce"] + 2.0 * out["attention"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert out["attention"].requires_grad and not out["teacher_maps"][0].requires_grad


# ----------------------------------------------------------------------------- the attention term

def maps_like(depth, heads, b=3, t=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(torch.randn(b, heads, t, t, generator=g) * 2, dim=-1) for _ in range(depth)]


@pytest.mark.parametrize("distance", distill.DISTANCES)
@pytest.mark.parametrize("heads", distill.HEAD_MODES)
def test_attention_term_is_zero_exactly_when_matched_maps_agree(heads, distance):
    student = maps_like(2, 4)
    assert distill.attention_distance(student, student, heads, distance).item() == pytest.approx(0, abs=1e-6)
    # A 6-layer, 8-head teacher whose matched layers (2 and 5) repeat each student head
    # twice: equal after either head reduction; its unmatched layers are arbitrary.
    teacher = maps_like(6, 8, seed=1)
    for s_layer, t_layer in enumerate(distill.match_layers(2, 6)):
        teacher[t_layer] = student[s_layer].repeat_interleave(2, dim=1)
    assert distill.attention_distance(student, teacher, heads, distance).item() == pytest.approx(0, abs=1e-6)
    unmatched = list(teacher)
    unmatched[0] = maps_like(1, 8, seed=5)[0]
    assert distill.attention_distance(student, unmatched, heads, distance).item() == pytest.approx(0, abs=1e-6)
    for layer in (2, 5):
        changed = list(teacher)
        changed[layer] = maps_like(1, 8, seed=7)[0]
        assert distill.attention_distance(student, changed, heads, distance).item() > 1e-4
    assert distill.attention_distance(maps_like(2, 4, seed=3), teacher, heads, distance).item() > 1e-4


def test_head_modes_differ_where_they_should():
    # Heads permuted inside the student: the head-mean is unchanged, the per-head target is not.
    student = maps_like(2, 4)
    # depth 3: student layers 0, 1 <- teacher layers 1, 2
    teacher = [maps_like(1, 8, seed=4)[0], student[0].repeat_interleave(2, 1),
               student[1].repeat_interleave(2, 1)]
    permuted = [m[:, [1, 0, 3, 2]] for m in student]
    assert distill.attention_distance(permuted, teacher, "mean").item() == pytest.approx(0, abs=1e-6)
    assert distill.attention_distance(permuted, teacher, "group").item() > 1e-3
    with pytest.raises(ValueError, match="multiple"):
        distill.attention_distance(maps_like(2, 3), maps_like(2, 8), "group")


def test_attention_term_vanishes_for_a_teacher_identical_to_the_student():
    torch.manual_seed(3)
    student = models.build("transformer_compact").eval()
    loss = distill.AttentionARDLoss(copy.deepcopy(student), eps=0.05, steps=1)
    out = loss.terms(student, frames_x(4), torch.tensor([0, 1, 2, 3]))
    assert out["attention"].item() == pytest.approx(0, abs=1e-6)
    assert out["kd"].item() > 0          # x' moves the student's output away from the clean one


def test_kd_loss_is_zero_for_equal_logits_and_positive_otherwise():
    logits = torch.randn(5, 11)
    assert distill.kd_loss(logits, logits, 4.0).item() == pytest.approx(0, abs=1e-6)
    assert distill.kd_loss(logits + torch.randn(5, 11), logits, 4.0).item() > 0


@pytest.mark.filterwarnings("ignore:precision bf16:RuntimeWarning")
def test_the_loss_terms_stay_float32_under_bf16_autocast(trained_teacher):
    torch.manual_seed(2)
    student = models.build("transformer_compact").eval()
    loss = distill.AttentionARDLoss(trained_teacher, eps=0.05, steps=1)
    with precision.autocast("bf16"):
        out = loss.terms(student, frames_x(4), torch.tensor([0, 1, 2, 3]))
    assert out["student_adv_logits"].dtype == out["student_maps"][0].dtype == torch.bfloat16
    for term in ("kd", "ce", "attention", "loss"):
        assert out[term].dtype == torch.float32, term


# ----------------------------------------------------------------------------- training

def test_distillation_loss_decreases_on_a_micro_run(data, trained_teacher):
    teacher_state = copy.deepcopy(trained_teacher.state_dict())
    x_val, y_val = (torch.from_numpy(a) for a in xy(data["val"]))
    torch.manual_seed(0)   # distill.train initialises from config.seed: the student's start
    probe_student = models.build("transformer_compact").eval()

    def attention_term(student):
        probe = distill.AttentionARDLoss(trained_teacher, eps=0.05, steps=2, seed=1)
        was = student.training
        student.eval()
        value = probe.terms(student, x_val, y_val)["attention"].item()
        student.train(was)
        return value

    config = training.TrainConfig(epochs=3, batch_size=22, lr=3e-3, seed=0)
    student, result, info = distill.train_student(
        "attention_ard", xy(data["train"]), xy(data["val"]), config, teacher=trained_teacher,
        progress=False, eps=0.05, steps=2, attention_weight=1.0)
    before = attention_term(probe_student)        # same seed, same initial weights as the student
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0], losses
    assert attention_term(student) < before
    assert info["method"] == "attention_ard" and info["layer_map"] == [1, 2]
    for key, value in trained_teacher.state_dict().items():   # the teacher stays frozen
        assert torch.equal(value, teacher_state[key]), key


@pytest.mark.parametrize("method", ["pgd_at", "ard"])
def test_baseline_losses_train(data, trained_teacher, method):
    config = training.TrainConfig(epochs=2, batch_size=33, lr=3e-3, seed=0)
    _, result, info = distill.train_student(method, xy(data["train"]), xy(data["val"]), config,
                                            teacher=trained_teacher, progress=False, steps=2)
    assert info["method"] == method and info["eps"] == distill.DEFAULT_EPS
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_bad_settings_are_refused(trained_teacher):
    with pytest.raises(ValueError, match="needs a teacher"):
        distill.make_loss("ard")
    with pytest.raises(ValueError, match="unknown method"):
        distill.make_loss("trades")
    with pytest.raises(ValueError, match="temperature"):
        distill.make_loss("ard", teacher=trained_teacher, temperature=0)
    with pytest.raises(ValueError, match="alpha"):
        distill.make_loss("ard", teacher=trained_teacher, alpha=1.5)
    with pytest.raises(ValueError, match="attention_weight"):
        distill.make_loss("attention_ard", teacher=trained_teacher, attention_weight=-1)
    with pytest.raises(ValueError, match="eps"):
        distill.make_loss("pgd_at", eps=-0.1)
    with pytest.raises(ValueError, match="forward_with_attention"):
        distill.make_loss("attention_ard", teacher=torch.nn.Linear(2, 2))


# ----------------------------------------------------------------------------- export and sink

def test_exported_student_runs_in_classifier_sink(tmp_path, data, trained_teacher):
    config = training.TrainConfig(epochs=1, batch_size=40, seed=0)
    student, result, info = distill.train_student("attention_ard", xy(data["train"]), xy(data["val"]),
                                                  config, teacher=trained_teacher, progress=False, steps=1)
    teacher_file = distill.export(trained_teacher, tmp_path / "teacher.pt", "transformer_large",
                                  {"command": "test"}, {"method": "pgd_at"})
    teacher = model_file.load(teacher_file)
    block = distill.training_metadata(info, config, result, distill.teacher_info(teacher))
    path = distill.export(student, tmp_path / "student.pt", "transformer_compact", {"command": "test"}, block)
    loaded = model_file.load(path)
    assert loaded.arch == "transformer_compact" and loaded.has_attention()
    assert loaded.metadata["training"]["teacher"]["sha256"] == teacher.sha256
    assert loaded.metadata["training"]["settings"]["attention_weight"] == 1.0
    assert loaded.metadata["parameters"] == models.parameter_count(student)

    frames = data["test"].frames
    tb = gr.top_block()
    tb.source = blocks.vector_source_c(frames.reshape(-1).tolist(), False, frames.shape[1])
    tb.sink = classifier_sink(str(path), batch_size=16)
    tb.debug = blocks.message_debug()
    tb.connect(tb.source, tb.sink)
    tb.msg_connect(tb.sink, "classification", tb.debug, "store")
    tb.run()
    assert tb.sink.frames_in() == len(frames) and tb.sink.frames_scored() == len(frames)
    sink_classes = [pmt.to_python(tb.debug.get_message(i))["class_index"]
                    for i in range(tb.debug.num_messages())]
    with torch.no_grad():
        offline = student.eval()(torch.from_numpy(data["test"].model_input())).argmax(1).numpy()
    assert sink_classes == offline.tolist()


# ----------------------------------------------------------------------------- the command

def test_claim_check_reads_every_budget():
    def entry(params, accs):
        attacks = [{"method": m, "psr_db": p, "eps": 0.1, "accuracy": a} for (m, p), a in accs.items()]
        return {"parameters": params, "whitebox": {"clean": {"accuracy": 0.9}, "attacks": attacks}}
    budgets = [("fgm", -30.0), ("pgd", -30.0), ("pgd", -20.0)]
    results = {"models": {
        "transformer_large_pgd_at": entry(1000, dict(zip(budgets, [0.8, 0.7, 0.6]))),
        "transformer_compact_pgd_at": entry(90, dict(zip(budgets, [0.5, 0.4, 0.3]))),
        "transformer_compact_ard": entry(90, dict(zip(budgets, [0.5, 0.4, 0.35]))),
        "transformer_compact_attention_ard": entry(90, dict(zip(budgets, [0.6, 0.5, 0.34])))}}
    check = distill.claim_check(results)
    assert check["comparisons"]["pgd_at"]["beats_at_every_budget"]
    assert not check["comparisons"]["ard"]["beats_at_every_budget"]
    assert check["comparisons"]["ard"]["budgets_won"] == 2 and not check["holds"]
    results["models"]["transformer_compact_attention_ard"]["whitebox"]["attacks"][2]["accuracy"] = 0.4
    assert distill.claim_check(results)["holds"]
    results["models"]["transformer_large_pgd_at"]["parameters"] = 800   # 90/800 > 1/10
    assert not distill.claim_check(results)["holds"]


def write_splits(directory, data):
    for name, rec in data.items():
        recording.write(directory / name, rec, "tones for the distillation tests")
    return directory


def test_command_runs_end_to_end_and_resumes(tmp_path, data, shapft):
    data_dir = write_splits(tmp_path / "data", data)
    reference = shapft_testing.write_model(tmp_path / "cnn_lstm.pt")
    out = tmp_path / "out"
    args = ["distill", "--data", data_dir, "--out", out, "--epochs", 1, "--teacher-epochs", 1,
            "--pgd-steps", 1, "--eval-steps", 2, "--budgets=-25", "--eval-frames", 44,
            "--transfer-models", reference, "--quiet", "--threads", 1]
    code, stdout, stderr = shapft(*args)
    assert code == 0, stderr
    names = ["transformer_large_pgd_at"] + [f"transformer_compact_{m}" for m in distill.STUDENT_METHODS]
    for name in names:
        assert (out / f"{name}.pt").is_file() and not (out / f"{name}.pt.ckpt").exists()
    for figure in ("distill_budget.png", "distill_snr.png", "distill_transfer.png", "distill_table.md"):
        assert (out / figure).stat().st_size > 0
    results = json.loads((out / "distill_results.json").read_text())
    assert list(results["models"]) == names + ["cnn_lstm"]
    student = results["models"]["transformer_compact_attention_ard"]
    attacks = {(a["method"], round(a["psr_db"], 1)) for a in student["whitebox"]["attacks"]}
    assert attacks == {("fgm", -25.0), ("fgm", -23.0), ("pgd", -25.0), ("pgd", -23.0)}
    assert student["whitebox"]["clean"]["frames"] == 44 and student["whitebox"]["clean"]["per_snr"]
    teacher_sha = results["models"]["transformer_large_pgd_at"]["sha256"]
    assert student["training"]["teacher"]["sha256"] == teacher_sha
    assert model_file.load(out / "transformer_compact_attention_ard.pt").metadata[
        "training"]["teacher"]["sha256"] == teacher_sha
    transfer = results["transfer"]
    assert transfer["sources"] == transfer["targets"] == names + ["cnn_lstm"]
    assert np.asarray(transfer["accuracy"]).shape == (6, 6)
    for i, name in enumerate(names):    # the diagonal is the white-box PGD accuracy at the training budget
        pgd = [a for a in results["models"][name]["whitebox"]["attacks"]
               if a["method"] == "pgd" and round(a["psr_db"], 1) == -23.0][0]
        assert transfer["accuracy"][i][i] == pytest.approx(pgd["accuracy"])
    assert set(results["claim"]["comparisons"]) == {"pgd_at", "ard"}
    assert "| transformer_compact_attention_ard | 18,635 |" in stdout

    stamps = {name: (out / f"{name}.pt").stat().st_mtime_ns for name in names}
    code, stdout, stderr = shapft(*args)
    assert code == 0, stderr
    assert stderr.count("not retrained") == 5
    assert {name: (out / f"{name}.pt").stat().st_mtime_ns for name in names} == stamps
    assert json.loads((out / "distill_results.json").read_text())["table"] == results["table"]

    code, _, stderr = shapft(*(args + ["--temperature", 9]))
    last = stderr.strip().splitlines()[-1]
    assert code == 2 and last.startswith("shapft distill: error: ") and "temperature 4.0 -> 9.0" in last
    assert stderr.count("error") == 1


def test_study_settings_take_a_precision_and_refuse_a_bad_one(shapft, capsys):
    assert study.DistillSettings().precision == "fp32"
    assert study.DistillSettings(precision="bf16").precision == "bf16"
    assert study.settings_from_options(["--precision", "auto"]).precision == "auto"
    for bad in ("fp16", "BF16", None):
        with pytest.raises(ValueError, match=r"^--precision: .* is not one of fp32, bf16, auto$"):
            study.DistillSettings(precision=bad)
    with pytest.raises(ValueError, match="^--precision: 'half'"):
        study.settings_from_options(["--precision=half"])
    with pytest.raises(SystemExit) as refused:       # argparse: a choice outside fp32, bf16, auto
        shapft("distill", "--data", "d", "--out", "o", "--precision", "fp16")
    assert refused.value.code == 2
    assert "argument --precision: invalid choice: 'fp16'" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:precision bf16:RuntimeWarning")
def test_command_trains_attacks_and_evaluates_in_bf16(tmp_path, data, shapft):
    out = tmp_path / "out"
    code, _, stderr = shapft("distill", "--data", write_splits(tmp_path / "data", data), "--out", out,
                             "--students", "ard", "--epochs", 1, "--teacher-epochs", 1, "--pgd-steps", 1,
                             "--eval-steps", 1, "--budgets=-25", "--eval-frames", 22, "--quiet",
                             "--threads", 1, "--precision", "bf16")
    assert code == 0, stderr
    results = json.loads((out / "distill_results.json").read_text())
    assert results["settings"]["evaluation"]["precision"] == "bf16"
    assert results["command"].endswith("--precision bf16")
    assert list(results["models"]) == ["transformer_large_pgd_at", "transformer_compact_ard"]
    for name, entry in results["models"].items():
        assert entry["training"]["precision"] == "bf16"
        assert model_file.read_metadata(out / f"{name}.pt")["training"]["precision"] == "bf16"
        assert {a["precision"] for a in entry["whitebox"]["attacks"]} == {"bf16"}


def test_select_robust_keeps_the_most_robust_epoch(tmp_path, data, shapft):
    out = tmp_path / "out"
    args = ["distill", "--data", write_splits(tmp_path / "data", data), "--out", out, "--students", "ard",
            "--epochs", 3, "--teacher-epochs", 1, "--pgd-steps", 1, "--eval-steps", 1, "--budgets=-25",
            "--eval-frames", 22, "--quiet", "--threads", 1]
    code, _, stderr = shapft(*args, "--select", "robust")
    assert code == 0, stderr
    results = json.loads((out / "distill_results.json").read_text())
    assert results["command"].endswith("--select robust")
    training = model_file.read_metadata(out / "transformer_compact_ard.pt")["training"]
    assert training["selection"]["criterion"] == "val_robust_acc"
    assert training["selection"]["steps"] == 1 and training["selection"]["frames"] == 1000
    scores = [h["val_robust_acc"] for h in training["history"]]
    assert len(scores) == 3 and training["best_epoch"] == 1 + int(np.argmax(scores))
    code, _, stderr = shapft(*args)    # the same OUT selecting on the loss: refused, not mixed
    assert code == 2 and "selection" in stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("extra, message", [
    (["--students", "standard,trades"], "--students: unknown method 'trades'"),
    (["--alpha", "1.5"], "--alpha must be in [0, 1]"),
    (["--pgd-eps", "-0.1"], "eps must be a finite number >= 0"),
    (["--budgets", "x"], "--budgets"),
    (["--teacher", "missing.pt"], "--teacher missing.pt: no such file"),
])
def test_bad_command_input_is_one_line(tmp_path, data, shapft, extra, message):
    data_dir = write_splits(tmp_path / "data", data)
    code, _, stderr = shapft("distill", "--data", data_dir, "--out", tmp_path / "out", *extra)
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1
