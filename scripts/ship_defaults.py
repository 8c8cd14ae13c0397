#!/usr/bin/env python3
"""Copy the shipped defaults out of a finished `shapft reproduce --preset small` run into
examples/ and write examples/models/PROVENANCE.md from the files' own metadata.

    .venv/bin/python scripts/ship_defaults.py RUN_DIR [--seed 0]

examples/models/: cnn_lstm.pt, cnn_lstm_shapft_eps<E>.pt (fine-tuning seed --seed, each
carrying its mask), mask_eps<E>.json, the distillation's transformer_large_pgd_at.pt and
transformer_compact_<method>.pt. Files shipped later by their own commands (the attack
detector, attack_detector.pt, and the adversarially trained cnn_lstm_robust.pt) stay, with their
rows in PROVENANCE.md.
examples/reproduce_small/: report.md, results.json,
evaluation.json, commands.log, stages.json and the figures, so the numbers the README
quotes can be traced to the run that made them.
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

from gnuradio.shapft.core import artifacts, model_file
from gnuradio.shapft.studies import reproduce

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
REPORT = ROOT / "examples" / "reproduce_small"
DISTILLED = ("transformer_large_pgd_at", "transformer_compact_standard", "transformer_compact_pgd_at",
             "transformer_compact_ard", "transformer_compact_attention_ard")


def shipped_files(run, seed):
    """(source, name in examples/models) for every shipped model and mask."""
    pipeline = reproduce.Pipeline(run, reproduce.PRESETS["small"])
    pairs = [(pipeline.original, "cnn_lstm.pt")]
    for eps in reproduce.PRESETS["small"].eps_levels:
        pairs.append((pipeline.finetuned("shapft", seed, eps), f"cnn_lstm_shapft_eps{eps:g}.pt"))
        pairs.append((pipeline.mask(eps), f"mask_eps{eps:g}.json"))
    pairs += [(run / "distill" / f"{name}.pt", f"{name}.pt") for name in DISTILLED]
    missing = [str(src) for src, _ in pairs if not src.exists()]
    if missing:
        sys.exit(f"{run} is not a finished small run; missing: {', '.join(missing)}")
    return pairs


def describe(path, run):
    if path.suffix == ".json":
        mask = json.loads(path.read_text())
        return (f"mask: m = {mask['m']} of {mask['frame_length']}, {mask['attack']} eps {mask['eps']:g}, "
                f"from model sha256 {mask['model_sha256'][:12]}")
    meta = model_file.read_metadata(path)
    training = meta.get("training") or {}
    # The run directory is this machine's; RUN stands for it (as in the header).
    command = (meta.get("provenance") or {}).get("command", "?").replace(str(run.resolve()), "RUN")
    if path.name in LATER:   # made outside the run: paths by file name, the data as DATA
        data = ((meta.get("provenance") or {}).get("data") or {}).get("train", {}).get("path")
        if data:
            command = command.replace(str(Path(data).parent), "DATA/small")
        command = " ".join(Path(word).name if "/" in word and not word.startswith("DATA/") else word
                           for word in command.split())
    parts = [f"`{meta['arch']}`, {meta['parameters']:,} parameters, frames of {meta['frame_length']}"]
    if meta.get("protects"):
        validation = training.get("validation") or {}
        parts.append(f"attack detector guarding `{meta['protects']['model']}` (sha256 "
                     f"{meta['protects']['sha256'][:12]}); validation ROC AUC {validation.get('auc', float('nan')):.3f}")
    if meta.get("mask"):
        parts.append(f"carries its mask (m = {meta['mask']['m']})")
    adversarial = training.get("adversarial")
    if adversarial:
        parts.append(f"adversarially trained: {adversarial['method']} at PSR {adversarial['psr_db']:g} dB, "
                     f"{adversarial['steps']} steps, from sha256 {training.get('init_sha256', '?')[:12]}")
    if "best_epoch" in training:
        parts.append(f"best epoch {training['best_epoch']} of {training.get('epochs_run')}, "
                     f"validation accuracy {100 * training['best_val_acc']:.1f}%")
    return "; ".join(parts) + f"<br>`{command}`"


# shipped after the run, by their own commands (DATA: the small preset's data)
LATER = ("attack_detector.pt", "cnn_lstm_robust.pt")


def write_provenance(rows, seed, later_rows=()):
    text = "\n".join([
        "# Provenance of the shipped models",
        "",
        "Every file here was made by `shapft reproduce --preset small --out RUN` (seed 1) and copied by",
        f"`scripts/ship_defaults.py RUN --seed {seed}` (fine-tuning seed {seed} for the SHAP-FT models).",
        "The commands below are read from each model's own metadata (`shapft.json` inside the",
        "TorchScript archive; RUN stands for the run directory, DATA for the directory of the",
        "data the earlier models were trained on). The run's report, results, commands",
        "(`commands.log`) and figures are",
        "in git history (`git show 7c620c8:examples/reproduce_small/report.md`); `examples/reproduce_small/` now holds a three-seed rerun of the same pipeline.",
        "",
        "`cnn_lstm.pt` and the five distillation models were trained before that run, on the same",
        "data files (same sha256, `shapft generate --preset small|tiny --seed 1`), by the commands",
        "below; the run found them and reused them (its `train` stage took 0 s, its `distill` stage",
        "only evaluated). The original's command says `--epochs 100` where `reproduce` says 200:",
        "early stopping ended it at epoch 24 (best 14), so the cap did not matter.",
        "",
        "| file | sha256 (16) | what it is and the command that made it |",
        "|---|---|---|",
        *rows,
        *(["", "Shipped later, by their own commands (DATA as above):", "",
            "| file | sha256 (16) | what it is and the command that made it |", "|---|---|---|", *later_rows]
          if later_rows else []),
        "",
    ])
    artifacts.write_bytes(MODELS / "PROVENANCE.md", text.encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="directory of a finished `shapft reproduce --preset small`")
    parser.add_argument("--seed", type=int, default=0, help="fine-tuning seed of the shipped SHAP-FT models")
    parser.add_argument("--models-only", action="store_true",
                        help="copy the models and masks only (the run's report is not written yet)")
    args = parser.parse_args()
    pairs = shipped_files(args.run, args.seed)
    MODELS.mkdir(parents=True, exist_ok=True)
    rows = []
    for src, name in pairs:
        shutil.copyfile(src, MODELS / name)
        rows.append(f"| `{name}` | `{artifacts.sha256_file(MODELS / name)[:16]}` | {describe(MODELS / name, args.run)} |")
    later = [f"| `{name}` | `{artifacts.sha256_file(MODELS / name)[:16]}` | {describe(MODELS / name, args.run)} |"
             for name in LATER if (MODELS / name).exists()]
    write_provenance(rows, args.seed, later)
    if args.models_only:
        print(f"shipped {len(pairs)} files into {MODELS}")
        return
    if REPORT.exists():
        shutil.rmtree(REPORT)
    REPORT.mkdir(parents=True)
    for name in ("report.md", "results.json", "evaluation.json", "commands.log", "stages.json", "preset.json"):
        shutil.copyfile(args.run / name, REPORT / name)
    shutil.copytree(args.run / "figures", REPORT / "figures")
    distill_dir = REPORT / "distill"
    distill_dir.mkdir()
    for path in (args.run / "distill").iterdir():
        if path.suffix in (".png", ".md") or path.name == "distill_results.json" or path.name.endswith(".training.json"):
            shutil.copyfile(path, distill_dir / path.name)
    print(f"shipped {len(pairs)} files into {MODELS}, the report into {REPORT}")


if __name__ == "__main__":
    main()
