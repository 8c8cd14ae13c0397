#!/usr/bin/env bash
# Screenshots on a virtual screen (Xvfb):
#   bash scripts/grc_screenshot.sh [FLOWGRAPH.grc] [OUT.png]
#       GNU Radio Companion with the flowgraph open (default examples/attack_defense.grc,
#       docs/NAME_grc.png): the visual check that Companion loads our blocks (all drawn,
#       no red error markers).
#   bash scripts/grc_screenshot.sh --run FLOWGRAPH.grc [OUT.png]
#       the running Qt flowgraph, after GUI_WAIT seconds (default 90; the models take a
#       while to load and the plots to fill), default docs/NAME.png; GUI_ARGS are its
#       arguments (e.g. GUI_ARGS="--recording rec.sigmf-meta --frequency-shift=-20e3").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN=0
if [ "${1:-}" = "--run" ]; then RUN=1; shift; fi
GRC_FILE="${1:-$ROOT/examples/attack_defense.grc}"
NAME="$(basename "${GRC_FILE%.grc}")"
if ((RUN)); then PNG="${2:-$ROOT/docs/$NAME.png}" SCREEN=1400x1000; else PNG="${2:-$ROOT/docs/${NAME}_grc.png}" SCREEN=1600x1000; fi
mkdir -p "$ROOT/build"
LOG="$ROOT/build/grc_screenshot.log"
if ((RUN)); then PROGRAM="$(bash "$ROOT/scripts/grcc.sh" "$GRC_FILE")"; fi

DISPLAY_NUMBER=97
while [ -e "/tmp/.X11-unix/X$DISPLAY_NUMBER" ] || [ -e "/tmp/.X$DISPLAY_NUMBER-lock" ]; do
    DISPLAY_NUMBER=$((DISPLAY_NUMBER + 1))
done
Xvfb ":$DISPLAY_NUMBER" -screen 0 "${SCREEN}x24" >/dev/null 2>&1 &
XVFB=$!
APP=""
SCRATCH="$(mktemp -d)"
trap 'kill $APP $XVFB 2>/dev/null || true; rm -rf "$SCRATCH"' EXIT
sleep 2
export DISPLAY=":$DISPLAY_NUMBER" NO_AT_BRIDGE=1
if ((RUN)); then
    # A fresh Qt settings directory: the window opens at the flowgraph's own size.
    XDG_CONFIG_HOME="$SCRATCH" QT_QPA_PLATFORM=xcb "$ROOT/.venv/bin/python" "$PROGRAM" ${GUI_ARGS:-} > "$LOG" 2>&1 &
    APP=$!
    sleep "${GUI_WAIT:-90}"
else
    # A fresh Companion preferences file: full-size window, short console, no block tree.
    printf '[main]\nmain_window_width = 1600\nmain_window_height = 1000\nconsole_window_position = 860\nblocks_window_position = 1590\n' > "$SCRATCH/grc.conf"
    GRC_PREFS_PATH="$SCRATCH/grc.conf" bash "$ROOT/scripts/companion.sh" "$GRC_FILE" > "$LOG" 2>&1 &
    APP=$!
    sleep "${GRC_WAIT:-25}"
fi
kill -0 "$APP" 2>/dev/null || { cat "$LOG"; echo "grc_screenshot.sh: it exited early" >&2; exit 1; }
import -window root "$PNG"
echo "wrote $PNG"
