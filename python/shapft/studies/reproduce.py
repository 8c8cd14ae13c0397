"""`shapft reproduce`: the whole SHAP-FT study (and, when asked, the distillation study)
as a resumable sequence of stages, each made of the same `shapft` commands a user runs.

Stages: data -> train -> attack -> explain -> mask -> finetune -> evaluate -> distill
-> report. A finished stage is recorded in OUT/stages.json and skipped on the next run;
inside a stage every artifact is written atomically and an existing one is not
redone, so an interrupted run resumes where it stopped. The distill stage runs only
with `distill=True` (hours on 2 cores); adding it to a finished run redoes the report.
"""
import concurrent.futures
import dataclasses
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..core import artifacts, masks

STAGES = ("data", "train", "attack", "explain", "mask", "finetune", "evaluate", "distill", "report")


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


def eps_name(eps):
    return f"eps{eps:g}"


class Pipeline:
    def __init__(self, out, preset, seed=1, workers=2, threads=None, progress=True, log=print, distill=False):
        self.out = Path(out)
        self.preset = preset
        self.seed = seed
        self.distill = distill
        self.workers = workers
        self.threads = threads
        self.progress = progress
        self.log = log
        self.stages_file = self.out / "stages.json"

    # --- bookkeeping -------------------------------------------------------------------
    def stages(self):
        return json.loads(self.stages_file.read_text()) if self.stages_file.exists() else {}

    def run(self, until=None):
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_preset()
        for stage in STAGES:
            done = self.stages()
            if stage == "distill" and not self.distill and stage not in done:
                self.log("[distill] not asked for (--distill), skipped")
            elif stage in done:
                self.log(f"[{stage}] done before ({done[stage]['seconds']:.0f} s), skipped")
            else:
                self.log(f"[{stage}] ...")
                start = time.perf_counter()
                getattr(self, f"stage_{stage}")()
                done = self.stages()
                done[stage] = {"seconds": round(time.perf_counter() - start, 1)}
                if stage == "distill":
                    done.pop("report", None)       # the report gains the distillation section
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

    def shapft(self, *args, threads=None):
        """Run `shapft ARGS` as a subprocess (the command is recorded for the report)."""
        args = [str(a) for a in args]
        threads = threads or self.threads
        if threads and args[0] in ("train", "attack", "explain", "finetune", "distill"):
            args += ["--threads", str(threads)]
        if not self.progress and args[0] in ("generate", "train", "attack", "finetune", "distill"):
            args.append("--quiet")
        self._note("shapft " + shlex.join(args))
        result = subprocess.run([sys.executable, "-m", "gnuradio.shapft.cli", *args],
                                stdout=subprocess.PIPE, stderr=None if self.progress else subprocess.PIPE,
                                text=True)
        if result.returncode != 0:
            raise RuntimeError(f"`shapft {shlex.join(args)}` failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr or ''}")
        return result.stdout

    def _note(self, line):
        """Record a command (or what was done instead of one) for the report."""
        with open(self.out / "commands.log", "a") as f:
            f.write(line + "\n")

    def shapft_parallel(self, jobs):
        """Run independent `shapft` commands `workers` at a time, one torch thread each
        (small-batch fine-tuning uses a core badly; two processes use both)."""
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            futures = [pool.submit(self.shapft, *job, threads=1) for job in jobs]
            for future in concurrent.futures.as_completed(futures):
                future.result()

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
                    self.shapft("generate", "--preset", preset, "--out", folder, "--seed", self.seed, "--force")
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
        if not self.original.exists():
            self.shapft("train", "--arch", "cnn_lstm", "--data", self.small, "--out", self.original,
                        "--epochs", self.preset.train_epochs, "--patience", self.preset.train_patience,
                        "--seed", self.seed, "--resume")

    def stage_attack(self):
        # FGSM against the original model: tiny-adv (SHAP's input) and adv-data (deployment).
        for eps in self.preset.eps_levels:
            for split in ("tiny-test", "adv-data"):
                if not self.attacked(eps, split).exists():
                    self.shapft("attack", "--model", self.original, "--data", self.tiny / f"{split}.sigmf-meta",
                                "--method", "fgsm", "--eps", eps, "--out", self.attacked(eps, split).parent,
                                "--seed", self.seed, "--force")

    def stage_explain(self):
        p = self.preset
        jobs = [(eps, "true") for eps in p.eps_levels] + [(p.eps_levels[0], "predicted")]  # Fig. 5
        for eps, outputs in jobs:
            path = self.shap_values(eps, outputs)
            if not path.exists():
                self.shapft("explain", "--model", self.original, "--background", self.tiny / "tiny-train.sigmf-meta",
                            "--data", self.attacked(eps, "tiny-test"), "--out", path, "--outputs", outputs,
                            "--background-size", p.shap_background, "--nsamples", p.shap_nsamples,
                            "--alphas", p.shap_alphas, "--seed", self.seed)

    def stage_mask(self):
        for eps in self.preset.eps_levels:
            if not self.mask(eps).exists():
                self.shapft("mask", "--shap", self.shap_values(eps), "--eps", eps, "--out", self.mask(eps))

    def stage_finetune(self):
        p = self.preset
        tiny_train = self.tiny / "tiny-train.sigmf-meta"
        common = ["--model", self.original, "--data", tiny_train, "--epochs", p.finetune_epochs,
                  "--patience", p.finetune_patience]
        m = {eps: masks.load(self.mask(eps))["m"] for eps in p.eps_levels}
        jobs, same_as_direct = [], []   # seed by seed, so the first seed's models are ready first
        for seed in p.seeds:
            jobs.append((self.finetuned("direct", seed), ["--method", "direct"], seed))
            for eps in p.eps_levels:
                for method in ("shapft", "random"):
                    path = self.finetuned(method, seed, eps)
                    if m[eps] == 0:
                        same_as_direct.append((path, seed))
                    else:
                        jobs.append((path, ["--method", method, "--mask", self.mask(eps)], seed))
                if seed in p.at_fgsm_seeds:
                    jobs.append((self.finetuned("at_fgsm", seed, eps), ["--method", "at_fgsm", "--eps", eps], seed))
        todo = [("finetune", *common, *extra, "--seed", seed, "--out", path, "--force")
                for path, extra, seed in jobs if not path.exists()]
        for path, _, _ in jobs:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"[finetune] {len(todo)} of {len(jobs)} fine-tuning runs to do, {self.workers} at a time")
        self.shapft_parallel(todo)
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

    def stage_distill(self):
        seed = self.seed if self.preset.distill_seed is None else self.preset.distill_seed
        self.shapft("distill", "--data", self.small, "--out", self.out / "distill", "--seed", seed,
                    "--transfer-models", self.original, *self.preset.distill_args)

    def stage_report(self):
        from . import report
        report.write(self)
