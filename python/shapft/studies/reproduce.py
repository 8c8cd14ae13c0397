"""`shapft reproduce`: the whole SHAP-FT study (and, when asked, the distillation study)
as a resumable sequence of stages, each calling the library functions behind the
`shapft` commands (studies.stages); OUT/commands.log lists the equivalent commands.

Stages: data -> train -> attack -> explain -> mask -> finetune -> evaluate -> aft ->
robustness -> distill -> report. A finished stage is recorded in OUT/stages.json and skipped on the next run;
inside a stage every artifact is written atomically and an existing one is not
redone, so an interrupted run resumes where it stopped. The distill stage runs only
with `distill=True` (hours on 2 cores); adding it (or the robustness stage, to a run
made before it existed) to a finished run redoes the report.
"""
import dataclasses
import json
import multiprocessing
import shutil
import time
from pathlib import Path

from ..core import artifacts, masks, shipped
from . import stages
from .jobs import run as run_in_workers

# aft before robustness: the ablation needs only the fine-tuning stage's models and masks, and
# the leaderboard is the longest stage, so `--aft --until aft` answers the ablation first
STAGES = ("data", "train", "attack", "explain", "mask", "finetune", "evaluate", "aft", "robustness", "distill",
          "report")
OPTIONAL_STAGES = {"aft": "--aft", "distill": "--distill"}   # run only when asked


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    data: str                      # "presets": shapft generate small + tiny; "micro": tiny custom sets
    train_epochs: int
    train_patience: int
    eps_levels: tuple
    shap_background: int
    shap_nsamples: int
    shap_alphas: str
    seeds: tuple                   # fine-tuning seeds of shapft, random and direct
    at_fgsm_seeds: tuple
    finetune_epochs: int
    finetune_patience: int
    distill_args: tuple            # extra arguments of `shapft distill` (stage run when asked)
    distill_seed: int = None       # seed of `shapft distill` (None: the run's --seed)


PRESETS = {
    "small": Preset("small", "presets", train_epochs=200, train_patience=10,
                    eps_levels=(0.025, 0.05, 0.075, 0.1, 0.15, 0.2),
                    shap_background=5000, shap_nsamples=200, shap_alphas="shap",
                    seeds=(0, 1, 2), at_fgsm_seeds=(0,), finetune_epochs=50, finetune_patience=5,
                    distill_args=("--epochs", "20", "--teacher-epochs", "15", "--eval-frames", "2200"),
                    distill_seed=0),
    "micro": Preset("micro", "micro", train_epochs=2, train_patience=2, eps_levels=(0.05, 0.1),
                    shap_background=64, shap_nsamples=8, shap_alphas="shap",
                    seeds=(0,), at_fgsm_seeds=(0,), finetune_epochs=2, finetune_patience=2,
                    distill_args=("--epochs", "1", "--teacher-epochs", "1")),
}
# micro: frames per class and SNR of each split (a few minutes in CI on 2 cores)
MICRO_COUNTS = {"small": {"train": 4, "val": 2, "test": 2},
                "tiny": {"tiny-train": 3, "adv-data": 2}}
MICRO_TINY_TEST_PER_CLASS = 4

# The robustness stage: `shapft robustness` on the test split, for the original model,
# direct fine-tuning and, at one eps, SHAP-FT, random deletion and AT-FGSM (the first
# seed of each). Transfer frames come from a shipped model this run did not train.
ROBUSTNESS = {"small": dict(eps=0.1, psr_db=(-30.0, -25.0, -20.0, -15.0), quick=False),
              "micro": dict(eps=0.1, psr_db=(-20.0,), quick=True)}
ROBUSTNESS_SURROGATE = "transformer_compact_standard.pt"


def eps_name(eps):
    return f"eps{eps:g}"


class Pipeline:
    def __init__(self, out, preset, seed=1, workers=2, threads=None, progress=True, log=print, distill=False,
                 precision="fp32", aft=False, device="auto"):
        self.out = Path(out)
        self.preset = preset
        self.seed = seed
        self.distill = distill
        self.aft = aft
        self.precision = precision   # of the model stages (train, attack, explain, finetune, robustness, aft;
                                     # distill too, but for auto, which keeps it in fp32)
        self.device_name = device    # as given (--device), for the commands it runs
        self.device = stages.run_device(device)   # where every model stage runs
        self.workers = workers
        self.threads = threads
        self.progress = progress
        self.log = log
        self.stages_file = self.out / "stages.json"
        self._kernel = None

    # --- bookkeeping -------------------------------------------------------------------
    def stages(self):
        return json.loads(self.stages_file.read_text()) if self.stages_file.exists() else {}

    def run(self, until=None):
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_preset()
        for stage in STAGES:
            done = self.stages()
            if stage in OPTIONAL_STAGES and not getattr(self, stage) and stage not in done:
                self.log(f"[{stage}] not asked for ({OPTIONAL_STAGES[stage]}), skipped")
            elif stage in done:
                self.log(f"[{stage}] done before ({done[stage]['seconds']:.0f} s), skipped")
            else:
                self.log(f"[{stage}] ...")
                start = time.perf_counter()
                getattr(self, f"stage_{stage}")()
                done = self.stages()
                done[stage] = {"seconds": round(time.perf_counter() - start, 1)}
                if stage in ("robustness", "aft", "distill"):
                    done.pop("report", None)       # the report gains the stage's section
                artifacts.write_json(self.stages_file, done)
                self.log(f"[{stage}] finished in {done[stage]['seconds']:.0f} s")
            if stage == until:
                break

    def _check_preset(self):
        record = self.out / "preset.json"
        wanted = {"preset": dataclasses.asdict(self.preset), "seed": self.seed}
        if record.exists():
            if json.loads(record.read_text()) != json.loads(json.dumps(wanted)):
                raise ValueError(f"{self.out} holds a run with other settings ({record}); "
                                 "use another --out or delete it")
        else:
            artifacts.write_json(record, wanted)

    def call(self, command, function, *options, threads=None, **kwargs):
        """Run one stage's library function, recording the `shapft` command that does the
        same (options: its (flag, value) pairs) in commands.log."""
        self._note(artifacts.command_line(command, *options))
        _set_torch_threads(threads or self.threads)
        return function(**kwargs)

    def _precision_option(self):
        """--precision as the commands would be given it (left out at their default fp32)."""
        return ("--precision", None if self.precision == "fp32" else self.precision)

    def device_option(self):
        """--device as the commands would be given it (left out at their default auto)."""
        return ("--device", None if self.device_name == "auto" else self.device_name)

    def _note(self, line):
        """Record a command (or what was done instead of one) for the report."""
        with open(self.out / "commands.log", "a") as f:
            f.write(line + "\n")

    def call_parallel(self, jobs):
        """Run independent fine-tuning jobs `workers` at a time in separate processes, one
        torch thread each (small-batch fine-tuning uses a core badly; two processes use
        both); Ctrl-C stops them (studies.jobs). jobs: (command line, keyword arguments
        of stages.finetune_model)."""
        for command, _ in jobs:
            self._note(command)
        # spawn: a fresh torch per process, no forked OpenMP state
        run_in_workers(_finetune_job, [(kwargs,) for _, kwargs in jobs], self.workers,
                       context=multiprocessing.get_context("spawn"), initializer=_set_torch_threads, initargs=(1,))

    # --- paths -----------------------------------------------------------------------
    @property
    def small(self):
        return self.out / "data" / "small"

    @property
    def tiny(self):
        return self.out / "data" / "tiny"

    @property
    def original(self):
        return self.out / "models" / "cnn_lstm.pt"

    def attacked(self, eps, split):
        return self.out / "attacks" / eps_name(eps) / f"{split}.sigmf-meta"

    def shap_values(self, eps, outputs="true"):
        return self.out / "shap" / f"{eps_name(eps)}_{outputs}.npz"

    def mask(self, eps):
        return self.out / "masks" / f"{eps_name(eps)}.json"

    def deletion_skipped(self, eps):
        """Why SHAP-FT and random deletion cannot run at eps (a text), or None: a mask that
        leaves fewer samples than the CNN-LSTM's convolution kernel (the masks follow from
        the original model's SHAP values, so a model may delete almost everything)."""
        mask = masks.load(self.mask(eps))
        if self._kernel is None:
            from ..core import model_file
            self._kernel = int(model_file.load(self.original).module.state_dict()["conv.weight"].shape[2])
        m, kept = mask["m"], masks.output_length(mask)
        if kept >= self._kernel:
            return None
        return (f"the mask deletes {m} positions, leaving {kept} samples, fewer than the CNN-LSTM's "
                f"convolution kernel ({self._kernel}): no SHAP-FT or random-deletion model at eps {eps:g}")

    def finetuned(self, method, seed, eps=None):
        folder = self.out / "finetune" / (eps_name(eps) if eps is not None else "no_attack")
        return folder / f"{method}_seed{seed}.pt"

    # --- stages ----------------------------------------------------------------------
    def stage_data(self):
        from . import generate
        from ..core import recording
        if self.preset.data == "presets":
            for preset, folder in (("small", self.small), ("tiny", self.tiny)):
                if not all(recording.exists(folder / split) for split in generate.PRESETS[preset]):
                    self.call("generate", generate.generate_preset,
                              ("--preset", preset), ("--out", folder), ("--seed", self.seed), ("--force", True),
                              preset=preset, out_dir=folder, seed=self.seed, force=True,
                              workers=self.workers, progress=self.progress)
            return
        for folder, counts in ((self.small, MICRO_COUNTS["small"]), (self.tiny, MICRO_COUNTS["tiny"])):
            for split, n in counts.items():
                if not recording.exists(folder / split):
                    self._write_split(folder, split, generate.uniform_counts(n))
        if not recording.exists(self.tiny / "tiny-test"):
            self._write_split(self.tiny, "tiny-test", generate.spread_counts(MICRO_TINY_TEST_PER_CLASS, self.seed))

    def _write_split(self, folder, split, counts):
        from . import generate
        from ..core import recording
        data = generate.generate_split(counts, self.seed, split, workers=self.workers, progress=False)
        data.info = {"generator": {"preset": "micro", "split": split, "seed": self.seed}}
        recording.write(folder / split, data, generate.DESCRIPTIONS[split], overwrite=True)

    def stage_train(self):
        p = self.preset
        if not self.original.exists():
            self.call("train", stages.train_classifier,
                      ("--arch", "cnn_lstm"), ("--data", self.small), ("--out", self.original),
                      ("--epochs", p.train_epochs), ("--patience", p.train_patience), ("--seed", self.seed),
                      ("--resume", True), self._precision_option(), self.device_option(),
                      arch="cnn_lstm", data=self.small, out=self.original, epochs=p.train_epochs,
                      patience=p.train_patience, seed=self.seed, resume=True, progress=self.progress, precision=self.precision,
                      device=self.device)

    def stage_attack(self):
        # FGSM against the original model: tiny-adv (SHAP's input) and adv-data (deployment).
        for eps in self.preset.eps_levels:
            for split in ("tiny-test", "adv-data"):
                if not self.attacked(eps, split).exists():
                    data, out = self.tiny / f"{split}.sigmf-meta", self.attacked(eps, split).parent
                    self.call("attack", stages.attack_recording,
                              ("--model", self.original), ("--data", data), ("--method", "fgsm"),
                              ("--eps", eps), ("--out", out), ("--seed", self.seed), ("--force", True),
                              self._precision_option(), self.device_option(),
                              model=self.original, data=data, method="fgsm", eps=eps, out=out,
                              seed=self.seed, force=True, progress=self.progress, precision=self.precision,
                              device=self.device)

    def stage_explain(self):
        p = self.preset
        jobs = [(eps, "true") for eps in p.eps_levels] + [(p.eps_levels[0], "predicted")]  # Fig. 5
        background = self.tiny / "tiny-train.sigmf-meta"
        for eps, outputs in jobs:
            path = self.shap_values(eps, outputs)
            if not path.exists():
                data = self.attacked(eps, "tiny-test")
                self.call("explain", stages.explain_recording,
                          ("--model", self.original), ("--background", background), ("--data", data),
                          ("--out", path), ("--outputs", outputs), ("--background-size", p.shap_background),
                          ("--nsamples", p.shap_nsamples), ("--alphas", p.shap_alphas), ("--seed", self.seed),
                          self._precision_option(), self.device_option(),
                          model=self.original, background=background, data=data, out=path, outputs=outputs,
                          background_size=p.shap_background, nsamples=p.shap_nsamples, alphas=p.shap_alphas,
                          seed=self.seed, progress=self.progress, precision=self.precision, device=self.device)

    def stage_mask(self):
        for eps in self.preset.eps_levels:
            if not self.mask(eps).exists():
                self.call("mask", stages.derive_mask,
                          ("--shap", self.shap_values(eps)), ("--eps", eps), ("--out", self.mask(eps)),
                          shap=self.shap_values(eps), eps=eps, out=self.mask(eps))

    def stage_finetune(self):
        p = self.preset
        tiny_train = self.tiny / "tiny-train.sigmf-meta"
        m = {eps: masks.load(self.mask(eps))["m"] for eps in p.eps_levels}
        jobs, same_as_direct = [], []   # seed by seed, so the first seed's models are ready first
        skipped = {eps: self.deletion_skipped(eps) for eps in p.eps_levels}
        for eps, reason in skipped.items():
            if reason:
                self.log(f"[finetune] {reason}")
                self._note(f"# {reason}")
        for seed in p.seeds:
            jobs.append((self.finetuned("direct", seed), "direct", None, None, seed))
            for eps in p.eps_levels:
                for method in () if skipped[eps] else ("shapft", "random"):
                    path = self.finetuned(method, seed, eps)
                    if m[eps] == 0:
                        same_as_direct.append((path, seed))
                    else:
                        jobs.append((path, method, self.mask(eps), None, seed))
                if seed in p.at_fgsm_seeds:
                    jobs.append((self.finetuned("at_fgsm", seed, eps), "at_fgsm", None, eps, seed))
        todo = []
        for path, method, mask, eps, seed in jobs:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                continue
            command = artifacts.command_line(
                "finetune", ("--model", self.original), ("--data", tiny_train), ("--epochs", p.finetune_epochs),
                ("--patience", p.finetune_patience), ("--method", method), ("--mask", mask), ("--eps", eps),
                ("--seed", seed), ("--out", path), ("--force", True), self._precision_option(),
                self.device_option())
            todo.append((command, dict(model=self.original, data=tiny_train, out=path, method=method,
                                       mask=mask, eps=eps, epochs=p.finetune_epochs,
                                       patience=p.finetune_patience, seed=seed, force=True,
                                       progress=False, precision=self.precision, device=self.device)))
        self.log(f"[finetune] {len(todo)} of {len(jobs)} fine-tuning runs to do, {self.workers} at a time")
        self.call_parallel(todo)
        # m = 0 deletes nothing: SHAP-FT and random deletion are then direct fine-tuning with
        # the same seed, bit for bit (checked on seed 0 of the small run), so they are copied.
        for path, seed in same_as_direct:
            if not path.exists():
                shutil.copyfile(self.finetuned("direct", seed), path)
                self._note(f"# m = 0: {path} is a copy of {self.finetuned('direct', seed)}")

    def stage_evaluate(self):
        from . import defense_eval
        path = self.out / "evaluation.json"
        defense_eval.evaluate_all(self, path, progress=self.progress, log=self.log)

    def robustness_models(self):
        p, eps = self.preset, ROBUSTNESS[self.preset.name]["eps"]
        deletion = [] if self.deletion_skipped(eps) else [self.finetuned("shapft", p.seeds[0], eps),
                                                          self.finetuned("random", p.seeds[0], eps)]
        return [self.original, self.finetuned("direct", p.seeds[0]), *deletion,
                self.finetuned("at_fgsm", p.at_fgsm_seeds[0], eps)]

    def stage_robustness(self):
        from . import robustness
        plan = ROBUSTNESS[self.preset.name]
        settings = robustness.make_settings(quick=plan["quick"], seed=self.seed, precision=self.precision)
        models = {}
        for path in self.robustness_models():   # with m = 0 SHAP-FT and random deletion are copies of direct
            first = models.setdefault(artifacts.sha256_file(path), path)
            if first != path:
                self.log(f"[robustness] {path} is the same model as {first}, left out")
        models, data, out = list(models.values()), self.small / "test.sigmf-meta", self.out / "robustness"
        surrogate = shipped.model(ROBUSTNESS_SURROGATE)
        self._note(robustness.command_line(models, data, out, plan["psr_db"], settings, surrogate=surrogate,
                                           device=self.device_option()[1]))
        _set_torch_threads(self.threads)
        robustness.run(models, data, out, psr_db=plan["psr_db"], settings=settings, surrogate=surrogate,
                       progress=self.progress, log=self.log, workers=self.workers, device=self.device)

    def stage_aft(self):
        from . import shapaft
        _set_torch_threads(self.threads)
        shapaft.run(self, shapaft.SETTINGS[self.preset.name], log=self.log)

    def stage_distill(self):
        from . import distill
        seed = self.seed if self.preset.distill_seed is None else self.preset.distill_seed
        # auto keeps the distillation in fp32: its compact students train slower under bf16
        # on CPUs (0.81x, docs/precision.md)
        precision = "fp32" if self.precision == "auto" else self.precision
        settings = distill.settings_from_options((*self.preset.distill_args, "--seed", str(seed),
                                                  "--precision", precision))
        out = self.out / "distill"
        self.call("distill", distill.run_study,
                  ("--data", self.small), ("--out", out), ("--seed", seed), ("--transfer-models", self.original),
                  *zip(self.preset.distill_args[::2], self.preset.distill_args[1::2]),
                  ("--precision", None if precision == "fp32" else precision), self.device_option(),
                  data_dir=self.small, out_dir=out, settings=settings, transfer_models=(self.original,),
                  progress=self.progress, log=self.log, device=self.device)

    def stage_report(self):
        from . import report
        report.write(self)


def _set_torch_threads(threads):
    if threads:
        import torch
        torch.set_num_threads(threads)


def _finetune_job(kwargs, stop):
    """One fine-tuning run in a worker process, ended by `stop` (studies.jobs)."""
    stages.finetune_model(**kwargs, stop=stop)
