#!/usr/bin/env bash
# Compile a flowgraph that uses gr-shapft's blocks, and run it if asked:
#   bash scripts/grcc.sh FLOWGRAPH.grc [-o DIR] [-r [FLOWGRAPH ARGUMENTS...]]
# e.g. `bash scripts/grcc.sh examples/attack_defense.grc -r --eps 0.05`.
# DIR defaults to build/examples; arguments after -r go to the generated program.
# Debian's grcc runs under /usr/bin/python3, which cannot import torch from .venv and
# does not know the module's blocks: here it runs under .venv's interpreter with the
# installed blocks on GRC_BLOCKS_PATH (directories already there are kept, after them).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
BLOCKS="$VENV/share/gnuradio/grc/blocks"
usage() { echo "usage: bash scripts/grcc.sh FLOWGRAPH.grc [-o DIR] [-r [ARGUMENTS...]]" >&2; exit 2; }

GRC_FILE="" OUT="$ROOT/build/examples" RUN=0
while (($#)); do
    case "$1" in
        -o|--output) (($# >= 2)) || usage; OUT="$2"; shift 2 ;;
        -r|--run) RUN=1; shift; break ;;
        -h|--help) usage ;;
        -*) echo "grcc.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$GRC_FILE" ] || usage; GRC_FILE="$1"; shift ;;
    esac
done
[ -n "$GRC_FILE" ] || usage
[ -f "$GRC_FILE" ] || { echo "grcc.sh: no such flowgraph: $GRC_FILE" >&2; exit 2; }
((RUN)) || (($# == 0)) || usage

[ -x "$VENV/bin/python" ] && [ -d "$BLOCKS" ] || bash "$ROOT/scripts/setup.sh"
export GRC_BLOCKS_PATH="$BLOCKS${GRC_BLOCKS_PATH:+:$GRC_BLOCKS_PATH}"
mkdir -p "$OUT"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
"$VENV/bin/python" /usr/bin/grcc -o "$OUT" "$GRC_FILE" > "$LOG" 2>&1 || { cat "$LOG" >&2; exit 1; }
PROGRAM="$(sed -n 's/^>>> Generating: //p' "$LOG" | tail -n 1)"
[ -n "$PROGRAM" ] || { cat "$LOG" >&2; echo "grcc.sh: grcc generated nothing" >&2; exit 1; }
if ((RUN)); then
    rm -f "$LOG"; trap - EXIT
    exec "$VENV/bin/python" -u "$PROGRAM" "$@"
fi
echo "$PROGRAM"
