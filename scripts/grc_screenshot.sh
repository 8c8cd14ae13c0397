#!/usr/bin/env bash
# Open an example in GNU Radio Companion on a virtual screen (Xvfb) and save a
# screenshot: the visual check that Companion loads our blocks (all drawn, no red
# error markers). Usage: bash scripts/grc_screenshot.sh [FLOWGRAPH.grc] [OUT.png]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GRC_FILE="${1:-$ROOT/examples/attack_defense.grc}"
PNG="${2:-$ROOT/docs/$(basename "${GRC_FILE%.grc}")_grc.png}"
VENV="$ROOT/.venv"
DISPLAY_NUMBER=97
Xvfb ":$DISPLAY_NUMBER" -screen 0 1600x1000x24 >/dev/null 2>&1 &
XVFB=$!
trap 'kill $GRC $XVFB 2>/dev/null || true' EXIT
sleep 2
# A fresh Companion preferences file: full-size window, short console, no block tree.
PREFS="$(mktemp)"
printf '[main]\nmain_window_width = 1600\nmain_window_height = 1000\nconsole_window_position = 860\nblocks_window_position = 1590\n' > "$PREFS"
export DISPLAY=":$DISPLAY_NUMBER" GRC_BLOCKS_PATH="$VENV/share/gnuradio/grc/blocks" NO_AT_BRIDGE=1 GRC_PREFS_PATH="$PREFS"
"$VENV/bin/python" /usr/bin/gnuradio-companion "$GRC_FILE" > "$ROOT/build/grc_screenshot.log" 2>&1 &
GRC=$!
sleep "${GRC_WAIT:-25}"
import -window root "$PNG"
echo "wrote $PNG"
