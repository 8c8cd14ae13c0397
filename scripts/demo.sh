#!/usr/bin/env bash
# Set up whatever is missing, then run examples/attack_defense.grc headless on the
# shipped default models: FGSM against the CNN-LSTM, undefended vs SHAP-FT.
# Arguments go to the flowgraph, e.g. `bash scripts/demo.sh --eps 0.1 --num-frames 4400`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec bash "$ROOT/scripts/grcc.sh" "$ROOT/examples/attack_defense.grc" -o "$ROOT/build/examples" -r "$@"
