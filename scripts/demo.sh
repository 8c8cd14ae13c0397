#!/usr/bin/env bash
# Set up whatever is missing, then run examples/attack_defense.grc headless on the
# shipped default models: FGSM against the CNN-LSTM, undefended vs SHAP-FT.
# Arguments go to the flowgraph, e.g. `bash scripts/demo.sh --eps 0.1 --num-frames 4400`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
VENV="$ROOT/.venv"
OUT="$ROOT/build/examples"
mkdir -p "$OUT"
# grcc runs with the venv's interpreter so the flowgraph's blocks can import torch.
GRC_BLOCKS_PATH="$VENV/share/gnuradio/grc/blocks" \
    "$VENV/bin/python" /usr/bin/grcc -o "$OUT" "$ROOT/examples/attack_defense.grc" > "$OUT/grcc.log" 2>&1 \
    || { cat "$OUT/grcc.log"; exit 1; }
exec "$VENV/bin/python" "$OUT/attack_defense.py" "$@"
