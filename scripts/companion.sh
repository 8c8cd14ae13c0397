#!/usr/bin/env bash
# Open GNU Radio Companion with gr-shapft's blocks (category [SHAP-FT]):
#   bash scripts/companion.sh [FLOWGRAPH.grc ...]
# e.g. `bash scripts/companion.sh examples/attack_defense_gui.grc`.
# Companion runs under .venv's interpreter, so the flowgraphs it runs (F6) can import
# torch, with the installed blocks on GRC_BLOCKS_PATH (directories already there are kept).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
BLOCKS="$VENV/share/gnuradio/grc/blocks"
[ -x "$VENV/bin/python" ] && [ -d "$BLOCKS" ] || bash "$ROOT/scripts/setup.sh"
export GRC_BLOCKS_PATH="$BLOCKS${GRC_BLOCKS_PATH:+:$GRC_BLOCKS_PATH}"
export NO_AT_BRIDGE="${NO_AT_BRIDGE:-1}"   # no accessibility-bus warnings
exec "$VENV/bin/python" /usr/bin/gnuradio-companion "$@"
