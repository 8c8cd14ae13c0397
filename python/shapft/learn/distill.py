"""Attention-based adversarial robust distillation (docs/distillation.md).

A large transformer is adversarially trained with PGD (the teacher); compact
transformers (the students) are trained four ways on the same data and epochs:

- ``standard``: clean cross-entropy.
- ``pgd_at``: PGD adversarial training (Madry et al. 2018): cross-entropy on PGD
  examples crafted against the model being trained.
- ``ard``: adversarially robust distillation (Goldblum et al. 2019), as in the ARD
  authors' code: x' = PGD against the student (cross-entropy on the true labels),
  loss = alpha * T^2 * KL(softmax(t(x)/T) || softmax(s(x')/T)) + (1 - alpha) * CE(s(x), y),
  the teacher seeing the clean frame.
- ``attention_ard``: ARD's loss plus ``attention_weight`` times the distance between
  the student's attention maps on x' and the teacher's attention maps on the same x'.

Every loss is a ``loss_fn(model, x, y) -> (loss, logits)`` for ``training.fit``,
computed in float32 from the logits and maps (cast), so it keeps its precision when
``fit`` runs the models under bf16 autocast.
The attention maps a loss uses are those ``forward_with_attention`` returns (softmax
probabilities [B, heads, T, T], rows summing to one); ``attention_maps`` is the one
place they are read, so tests can check them against the model's own.

Attention matching (``match_layers``, ``attention_distance``):

- Layers: with Ls student and Lt teacher layers, student layer i (0-based) is matched
  to teacher layer round((i + 1) * Lt / Ls) - 1: the layers at the same relative
  depth, the last layer always to the last (2 <- 6: student 0 <- teacher 2, student 1
  <- teacher 5). Depth-proportional mapping is TinyBERT's "uniform" strategy; the
  last-layer pair matters most (its class-token row is what the head reads).
- Heads: ``mean`` (default) averages the heads of each side: a layer's mean attention
  is still a row-stochastic matrix (a mixture of its heads' distributions), and it
  imposes no correspondence between individual heads, which are interchangeable
  (any permutation of heads is the same network) and differ in number (4 vs 8).
  ``group`` averages consecutive groups of Ht/Hs teacher heads and matches group j to
  student head j, a stricter target for when head counts divide.
- Distance: ``kl`` (default) is KL(teacher row || student row), summed over the keys,
  averaged over query rows, frames and matched layers: each row is a probability
  distribution, KL is the natural divergence between distributions (MiniLM's choice),
  it does not shrink with the number of tokens as an elementwise MSE of probabilities
  does (entries ~1/17), and it weighs misplaced mass relative to the teacher's.
  ``mse`` (TinyBERT's) is the mean squared difference of the probabilities.
"""
import dataclasses
import math
from typing import List

import numpy as np
import torch
import torch.nn.functional as F

from ..core import budget, model_file
from .. import models
from ..attacks.training import AdversarialLoss, PGDATLoss
from . import training
from .metrics import accuracy_report, predict_logits, under_attacks
from ..core.radioml import FRAME_LENGTH

TEACHER_ARCH = "transformer_large"
STUDENT_ARCH = "transformer_compact"
TEACHER_METHOD = "pgd_at"
STUDENT_METHODS = ("standard", "pgd_at", "ard", "attention_ard")
HEAD_MODES = ("mean", "group")
DISTANCES = ("kl", "mse")

# Defaults; docs/distillation.md gives the reasons.
DEFAULT_EPS = 0.05            # L-inf per real component: PSR -23.0 dB
DEFAULT_STEPS = 7             # PGD steps in training (step 2.5 eps / steps, random start)
DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.9           # weight of the distillation term; 1 - alpha on clean CE
DEFAULT_ATTENTION_WEIGHT = 1.0
DEFAULT_EVAL_PSR_DB = (-30.0, -25.0, -20.0)
DEFAULT_EVAL_STEPS = 20       # PGD steps in evaluation: stronger than training's


def model_name(arch, method):
    """File stem of a model: transformer_large_pgd_at, transformer_compact_ard, ..."""
    return f"{arch}_{method}"


# --------------------------------------------------------------------------------------
# Attention maps and their distance
# --------------------------------------------------------------------------------------

def attention_maps(model, x):
    """(logits [B, C], [attention [B, heads, T, T] per layer]) of `model` on x: the
    model's own `forward_with_attention` (TorchScript models included)."""
    if not hasattr(model, "forward_with_attention"):
        raise ValueError(f"{type(model).__name__} has no forward_with_attention; attention "
                         "distillation needs a gr-shapft transformer")
    logits, maps = model.forward_with_attention(x)
    return logits, list(maps)


def match_layers(student_depth, teacher_depth):
    """Teacher layer index for each student layer: round((i + 1) * Lt / Ls) - 1."""
    for name, value in (("student_depth", student_depth), ("teacher_depth", teacher_depth)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    # floor(x + 0.5) rather than Python's round (banker's rounding) so 2.5 -> 3.
    return [int(math.floor((i + 1) * teacher_depth / student_depth + 0.5)) - 1
            for i in range(student_depth)]


def _reduce_heads(student, teacher, heads):
    if heads == "mean":
        return student.mean(dim=1, keepdim=True), teacher.mean(dim=1, keepdim=True)
    hs, ht = student.shape[1], teacher.shape[1]
    if ht % hs:
        raise ValueError(f"heads='group' needs the teacher's heads ({ht}) to be a multiple of "
                         f"the student's ({hs})")
    b, _, t, k = teacher.shape
    return student, teacher.reshape(b, hs, ht // hs, t, k).mean(dim=2)


def attention_distance(student_maps: List[torch.Tensor], teacher_maps: List[torch.Tensor],
                       heads="mean", distance="kl"):
    """Mean distance between matched layers' attention maps (module docstring):
    0 when each student layer's (head-reduced) maps equal its teacher layer's."""
    if heads not in HEAD_MODES:
        raise ValueError(f"heads must be one of {', '.join(HEAD_MODES)}, got {heads!r}")
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
    if not student_maps or not teacher_maps:
        raise ValueError("attention_distance needs at least one attention map per model")
    pairs = match_layers(len(student_maps), len(teacher_maps))
    total = student_maps[0].new_zeros((), dtype=torch.float32)
    for s_map, t_index in zip(student_maps, pairs):
        t_map = teacher_maps[t_index].detach()
        if s_map.shape[0] != t_map.shape[0] or s_map.shape[2:] != t_map.shape[2:]:
            raise ValueError(f"attention maps do not align: student {tuple(s_map.shape)}, "
                             f"teacher {tuple(t_map.shape)}")
        s, t = _reduce_heads(s_map.float(), t_map.float(), heads)
        if distance == "kl":
            tiny = torch.finfo(s.dtype).tiny
            # KL(t || s) per query row, summed over keys; 0 log 0 = 0.
            kl = torch.xlogy(t, t) - t * torch.log(s.clamp_min(tiny))
            total = total + kl.sum(dim=-1).mean()
        else:
            total = total + (s - t).pow(2).mean()
    return total / len(pairs)


def kd_loss(student_logits, teacher_logits, temperature):
    """Hinton's distillation term: T^2 * KL(softmax(t/T) || softmax(s/T)), mean over frames
    (the T^2 keeps its gradient's scale independent of T)."""
    t = float(temperature)
    return t * t * F.kl_div(F.log_softmax(student_logits.float() / t, dim=1),
                            F.softmax(teacher_logits.detach().float() / t, dim=1), reduction="batchmean")


# --------------------------------------------------------------------------------------
# Losses for training.fit
# --------------------------------------------------------------------------------------

class ARDLoss(AdversarialLoss):
    """ARD: alpha T^2 KL(teacher(x) || student(PGD_student(x))) + (1 - alpha) CE(student(x), y).

    The teacher is frozen (eval mode, no gradients); it sees the clean frames, as in
    the ARD authors' code. `terms` returns every part for inspection and tests."""
    method = "ard"

    def __init__(self, teacher, eps=DEFAULT_EPS, steps=DEFAULT_STEPS, temperature=DEFAULT_TEMPERATURE,
                 alpha=DEFAULT_ALPHA, step_size=None, seed=0):
        super().__init__(eps, steps, step_size, seed)
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self.teacher = freeze(teacher)
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def _teacher(self, x, x_adv):
        with torch.no_grad():
            return {"teacher_logits": self.teacher(x)}

    def _student(self, model, x_adv):
        return {"student_adv_logits": model(x_adv)}

    def terms(self, model, x, y):
        """Every part of the loss for a batch: adversarial frames, logits, maps, terms."""
        x_adv = self.adversarial(model, x, y)
        out = {"x_adv": x_adv, **self._teacher(x, x_adv), **self._student(model, x_adv)}
        out["kd"] = kd_loss(out["student_adv_logits"], out["teacher_logits"], self.temperature)
        if self.alpha < 1:
            out["student_clean_logits"] = model(x)
            out["ce"] = F.cross_entropy(out["student_clean_logits"].float(), y)
        else:
            out["ce"] = x.new_zeros(())
        out["loss"] = self.alpha * out["kd"] + (1 - self.alpha) * out["ce"]
        return out

    def __call__(self, model, x, y):
        out = self.terms(model, x, y)
        return out["loss"], out["student_adv_logits"]

    def info(self):
        return {"method": self.method, **super().info(), "temperature": self.temperature,
                "alpha": self.alpha, "teacher_input": "clean"}


class AttentionARDLoss(ARDLoss):
    """ARD's loss + attention_weight * attention_distance(student maps on x', teacher maps
    on the same x'), x' crafted against the student."""
    method = "attention_ard"

    def __init__(self, teacher, eps=DEFAULT_EPS, steps=DEFAULT_STEPS, temperature=DEFAULT_TEMPERATURE,
                 alpha=DEFAULT_ALPHA, attention_weight=DEFAULT_ATTENTION_WEIGHT, heads="mean",
                 distance="kl", step_size=None, seed=0):
        super().__init__(teacher, eps, steps, temperature, alpha, step_size, seed)
        if not hasattr(teacher, "forward_with_attention"):
            raise ValueError("the teacher has no forward_with_attention; attention_ard needs a "
                             "gr-shapft transformer teacher")
        if not (isinstance(attention_weight, (int, float)) and math.isfinite(attention_weight)
                and attention_weight >= 0):
            raise ValueError(f"attention_weight must be a number >= 0, got {attention_weight!r}")
        if heads not in HEAD_MODES:
            raise ValueError(f"heads must be one of {', '.join(HEAD_MODES)}, got {heads!r}")
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        self.attention_weight = float(attention_weight)
        self.heads = heads
        self.distance = distance
        self._layer_map = None

    def _teacher(self, x, x_adv):
        # One teacher pass over [x; x']: clean logits for the KD term, maps on x'.
        with torch.no_grad():
            logits, maps = attention_maps(self.teacher, torch.cat([x, x_adv]))
        b = len(x)
        return {"teacher_logits": logits[:b], "teacher_maps": [m[b:] for m in maps]}

    def _student(self, model, x_adv):
        logits, maps = attention_maps(model, x_adv)
        return {"student_adv_logits": logits, "student_maps": maps}

    def terms(self, model, x, y):
        out = super().terms(model, x, y)
        out["attention"] = attention_distance(out["student_maps"], out["teacher_maps"],
                                              self.heads, self.distance)
        self._layer_map = match_layers(len(out["student_maps"]), len(out["teacher_maps"]))
        out["loss"] = out["loss"] + self.attention_weight * out["attention"]
        return out

    def info(self):
        info = {**super().info(), "attention_weight": self.attention_weight,
                "attention_heads": self.heads, "attention_distance": self.distance,
                "attention_inputs": "adversarial (crafted against the student)"}
        if self._layer_map is not None:
            info["layer_map"] = self._layer_map
        return info


class CleanLoss:
    """Standard training: clean cross-entropy (training.cross_entropy_loss) with info()."""
    method = "standard"

    def __call__(self, model, x, y):
        return training.cross_entropy_loss(model, x, y)

    def info(self):
        return {"method": self.method}


def freeze(module):
    """Put a teacher in eval mode with its parameters excluded from autograd."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def make_loss(method, teacher=None, eps=DEFAULT_EPS, steps=DEFAULT_STEPS, temperature=DEFAULT_TEMPERATURE,
              alpha=DEFAULT_ALPHA, attention_weight=DEFAULT_ATTENTION_WEIGHT, heads="mean",
              distance="kl", step_size=None, seed=0):
    """The loss_fn of a training method (standard, pgd_at, ard, attention_ard)."""
    if method == "standard":
        return CleanLoss()
    if method == "pgd_at":
        return PGDATLoss(eps, steps, step_size, seed)
    if method in ("ard", "attention_ard") and teacher is None:
        raise ValueError(f"method {method!r} needs a teacher")
    if method == "ard":
        return ARDLoss(teacher, eps, steps, temperature, alpha, step_size, seed)
    if method == "attention_ard":
        return AttentionARDLoss(teacher, eps, steps, temperature, alpha, attention_weight, heads,
                                distance, step_size, seed)
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(STUDENT_METHODS)}")


# --------------------------------------------------------------------------------------
# Training entry points and export
# --------------------------------------------------------------------------------------

def train(arch, loss_fn, train_xy, val_xy, config, checkpoint_path=None, progress=True,
          frame_length=FRAME_LENGTH, precision="fp32", device="cpu", selection=None):
    """A fresh `arch` model (initialised from config.seed on the CPU) trained with
    `loss_fn` through training.fit in `precision` on `device`, early stopping on the
    validation loss or `selection` (training.RobustSelection). Returns (model, TrainResult)."""
    torch.manual_seed(config.seed)
    model = models.build(arch, frame_length=frame_length).to(device)
    result = training.fit(model, train_xy, val_xy, config, loss_fn=loss_fn,
                          checkpoint_path=checkpoint_path, progress=progress, precision=precision,
                          selection=selection)
    return model, result


def train_teacher(train_xy, val_xy, config, eps=DEFAULT_EPS, steps=DEFAULT_STEPS,
                  checkpoint_path=None, progress=True, arch=TEACHER_ARCH, frame_length=FRAME_LENGTH,
                  precision="fp32", device="cpu", selection=None):
    """The robust teacher: `arch` (transformer_large) with PGD adversarial training."""
    loss = PGDATLoss(eps, steps, seed=config.seed)
    model, result = train(arch, loss, train_xy, val_xy, config, checkpoint_path, progress, frame_length,
                          precision, device, selection)
    return model, result, loss.info()


def train_student(method, train_xy, val_xy, config, teacher=None, checkpoint_path=None,
                  progress=True, arch=STUDENT_ARCH, frame_length=FRAME_LENGTH, precision="fp32",
                  device="cpu", selection=None, **loss_settings):
    """A compact student trained by `method` on `device` (the teacher's); loss_settings go
    to make_loss."""
    loss = make_loss(method, teacher=teacher, seed=config.seed, **loss_settings)
    model, result = train(arch, loss, train_xy, val_xy, config, checkpoint_path, progress, frame_length,
                          precision, device, selection)
    return model, result, loss.info()


def training_metadata(method_info, config, result=None, teacher=None):
    """The `training` block of a model file: method settings, TrainConfig, fit summary,
    and the teacher (path, sha256, parameters) for a distilled student."""
    block = {"method": method_info.get("method"), "settings": method_info,
             "config": dataclasses.asdict(config)}
    if result is not None:
        block.update(result.summary())
    if teacher is not None:
        block["teacher"] = teacher
    return block


def teacher_info(loaded):
    """What a student's metadata records about its teacher (a model_file.LoadedModel)."""
    return {"path": str(loaded.path), "sha256": loaded.sha256, "arch": loaded.arch,
            "parameters": int(loaded.metadata.get("parameters") or models.parameter_count(loaded.module)),
            "training_method": (loaded.metadata.get("training") or {}).get("method")}


def export(model, path, arch, provenance, training_block, frame_length=FRAME_LENGTH):
    """Write a TorchScript model file with metadata (model_file.save); returns the path."""
    return model_file.export(model, path, arch, frame_length, provenance, training=training_block)


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------

def eval_attacks(psr_db_list=DEFAULT_EVAL_PSR_DB, train_eps=DEFAULT_EPS, frame_length=FRAME_LENGTH):
    """(method, eps) pairs: FGM (L2) and PGD (L-inf) at each PSR in psr_db_list plus the
    training budget's PSR, ascending. The same PSR gives both attacks the same power."""
    psrs = sorted({round(float(p), 6) for p in psr_db_list}
                  | {round(budget.eps_to_psr_db(train_eps, "linf"), 6)})
    pairs = []
    for method, norm in (("fgm", "l2"), ("pgd", "linf")):
        for psr in psrs:
            pairs.append((method, budget.psr_db_to_eps(psr, norm, frame_length), psr))
    return pairs


def whitebox(module, x, labels, snr_db, attack_list, pgd_steps=DEFAULT_EVAL_STEPS, seed=0,
             batch_size=256, keep=(), progress=False, precision="fp32"):
    """Clean accuracy and accuracy under each (method, eps, psr_db) of attack_list crafted
    against `module` itself (untargeted, true labels), the forward and backward passes
    in `precision`. Returns (report, kept) where kept maps each (method, psr_db) in
    `keep` to its adversarial frames (for transfer)."""
    clean = accuracy_report(labels, predict_logits(module, x, precision=precision).argmax(axis=1), snr_db)
    report = {"clean": _slim(clean, keep_confusion=True), "attacks": []}
    kept = {}
    runs = under_attacks(module, x, [(method, eps, {"steps": pgd_steps} if method == "pgd" else {})
                                     for method, eps, _ in attack_list],
                         labels, seed, batch_size, progress, precision)
    for (method, _, psr), (entry, x_adv, predictions) in zip(attack_list, runs):
        entry["psr_db"] = psr   # the budget as asked for, the key reports and `keep` use
        entry.update(_slim(accuracy_report(labels, predictions, snr_db)))
        report["attacks"].append(entry)
        if (method, psr) in keep:
            kept[(method, psr)] = x_adv
    return report, kept


def transfer_matrix(modules, adversarial, labels, precision="fp32"):
    """accuracy[i][j]: target model j's accuracy on frames crafted against source model i.
    modules: name -> module (targets); adversarial: name -> x_adv (sources)."""
    sources, targets = list(adversarial), list(modules)
    matrix = []
    for source in sources:
        row = []
        for target in targets:
            predicted = predict_logits(modules[target], adversarial[source],
                                       precision=precision).argmax(axis=1)
            row.append(float(np.mean(predicted == labels)))
        matrix.append(row)
    return {"sources": sources, "targets": targets, "accuracy": matrix}


def _slim(report, keep_confusion=False):
    keys = ["frames", "accuracy", "high_snr_accuracy", "per_snr"]
    if keep_confusion:
        keys += ["classes", "confusion"]
    return {k: report[k] for k in keys}


def results_table(results):
    """Rows for the results table: model, parameters, clean, then each attack's accuracy."""
    rows = []
    for name, entry in results["models"].items():
        row = {"model": name, "role": entry.get("role"), "parameters": entry["parameters"],
               "clean": entry["whitebox"]["clean"]["accuracy"]}
        for attack in entry["whitebox"]["attacks"]:
            row[attack_key(attack)] = attack["accuracy"]
        rows.append(row)
    return rows


def attack_key(attack):
    return f"{attack['method']}@{attack['psr_db']:.1f}dB"


def claim_check(results, method="attention_ard", baselines=("pgd_at", "ard"),
                teacher="transformer_large_pgd_at", max_parameter_ratio=0.1):
    """The paper's claim on our numbers: the attention-distilled student beats each
    baseline student under every FGM and PGD budget, with at most 1/10 of the teacher's
    parameters. Returns per-attack margins (accuracy differences) and the verdicts."""
    students = {n: e for n, e in results["models"].items()}
    ours = students.get(model_name(STUDENT_ARCH, method))
    if ours is None:
        return {"checked": False, "reason": f"no {method} student evaluated"}
    check = {"checked": True, "student": model_name(STUDENT_ARCH, method), "comparisons": {}}
    ours_acc = {attack_key(a): a["accuracy"] for a in ours["whitebox"]["attacks"]}
    holds = True
    for baseline in baselines:
        other = students.get(model_name(STUDENT_ARCH, baseline))
        if other is None:
            continue
        margins = {attack_key(a): ours_acc[attack_key(a)] - a["accuracy"]
                   for a in other["whitebox"]["attacks"] if attack_key(a) in ours_acc}
        beats = all(m > 0 for m in margins.values())
        check["comparisons"][baseline] = {"margins": margins, "beats_at_every_budget": beats,
                                          "budgets_won": sum(m > 0 for m in margins.values()),
                                          "budgets": len(margins)}
        holds = holds and beats
    if teacher in students:
        ratio = ours["parameters"] / students[teacher]["parameters"]
        check["parameter_ratio"] = ratio
        check["parameters_ok"] = ratio <= max_parameter_ratio
        holds = holds and check["parameters_ok"]
    check["holds"] = bool(holds and check["comparisons"])
    return check
