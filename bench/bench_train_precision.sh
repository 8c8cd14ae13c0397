#!/usr/bin/env bash
# Training in fp32 against bf16 autocast, the same recipe and seed, a few epochs of each
# architecture, one run after another (docs/precision.md, BENCHMARKS.md). Run on a quiet machine:
#   bash bench/bench_train_precision.sh DATA OUT
# DATA: a `shapft generate --preset small --seed 1` directory; OUT: where the models and their
# training summaries go (a finished run is skipped, so a stopped benchmark continues).
set -euo pipefail
DATA="$1"; OUT="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHAPFT="${SHAPFT:-$ROOT/.venv/bin/shapft}"
mkdir -p "$OUT"
for spec in cnn_lstm:6:1 transformer_compact:6:1 transformer_large:3:1 cnn_lstm:6:2; do
    IFS=: read -r arch epochs seed <<< "$spec"
    for precision in fp32 bf16; do
        out="$OUT/${arch}_seed${seed}_${precision}.pt"
        [[ -f "$out" ]] && continue
        "$SHAPFT" train --arch "$arch" --data "$DATA" --out "$out" --epochs "$epochs" --patience 100 \
            --seed "$seed" --precision "$precision" --threads 2 --quiet
    done
done
"$ROOT/.venv/bin/python" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
runs = {}
for path in sorted(Path(sys.argv[1]).glob("*.training.json")):
    history = json.loads(path.read_text())["history"]
    arch_seed, precision = path.name[:-len(".training.json")].rsplit("_", 1)
    runs.setdefault(arch_seed, {})[precision] = history
print("| architecture, seed | epochs | val accuracy per epoch fp32 (%) | bf16 (%) | s/epoch fp32 | bf16 | bf16 speed |")
print("|---|---:|---|---|---:|---:|---:|")
for name, both in runs.items():
    if set(both) != {"fp32", "bf16"}:
        continue
    accuracy = {p: " ".join(f"{100 * e['val_acc']:.1f}" for e in h) for p, h in both.items()}
    seconds = {p: sum(e["seconds"] for e in h) / len(h) for p, h in both.items()}
    print(f"| {name} | {len(both['fp32'])} | {accuracy['fp32']} | {accuracy['bf16']} | {seconds['fp32']:.1f} | "
          f"{seconds['bf16']:.1f} | {seconds['fp32'] / seconds['bf16']:.2f}x |")
PY
