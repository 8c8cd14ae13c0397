#!/usr/bin/env bash
# Run every benchmark on the installed module and keep each one's output in
# bench/results/NAME.txt (BENCHMARKS.md quotes them). Run on a quiet machine:
#   bash bench/run_all.sh [--models DIR] [NAME...]
# DIR: trained models (default examples/models); NAMEs: run only these benchmarks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS="$ROOT/examples/models"
if [[ "${1:-}" == "--models" ]]; then MODELS="$2"; shift 2; fi
ONLY=" $* "
PY="$ROOT/.venv/bin/python"
export PYTHONPATH="$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"   # shapft_testing (test frames and models)
OUT="$ROOT/bench/results"
mkdir -p "$OUT"
wanted() { [[ "$ONLY" == "  " || "$ONLY" == *" $1 "* ]]; }
run() {
    local name="$1"; shift
    wanted "$name" || return 0
    echo "== $name: $*"
    { echo "\$ ${*//$ROOT\//}"; echo "# $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"; "$@"; } \
        2>&1 | grep --line-buffered -v 'set_min_output_buffer' | sed -u 's/.*\r//' | tee "$OUT/$name.txt"
}
cd "$ROOT"
run channel_model "$PY" bench/bench_channel_model.py
run models "$PY" bench/bench_models.py --threads 2
run blocks "$PY" bench/bench_blocks.py --cnn-lstm "$MODELS/cnn_lstm.pt" --compact "$MODELS/transformer_compact_attention_ard.pt"
run blocks_1thread "$PY" bench/bench_blocks.py --threads 1 --cnn-lstm "$MODELS/cnn_lstm.pt" --compact "$MODELS/transformer_compact_attention_ard.pt"
# The noisiest row (this host's 2-thread speed drifts), again with more rounds.
run blocks_sink_compact "$PY" bench/bench_blocks.py --only sink:transformer_compact --repeats 7 \
    --cnn-lstm "$MODELS/cnn_lstm.pt" --compact "$MODELS/transformer_compact_attention_ard.pt"
run blocks_precision "$PY" bench/bench_blocks.py --compare-precision --cnn-lstm "$MODELS/cnn_lstm.pt" \
    --compact "$MODELS/transformer_compact_attention_ard.pt"
run precision "$PY" bench/bench_precision.py --threads 2
run distill_sink "$PY" bench/bench_distill_sink.py --student "$MODELS/transformer_compact_attention_ard.pt" --cnn-lstm "$MODELS/cnn_lstm.pt"
# SHAP needs the tiny dataset (about 45 s to generate; kept for the next run).
TINY="$OUT/tiny"
! wanted shap || [[ -f "$TINY/adv-data.sigmf-meta" ]] || "$ROOT/.venv/bin/shapft" generate --preset tiny --out "$TINY" --seed 1 --force --quiet
run shap "$PY" bench/bench_shap.py --model "$MODELS/cnn_lstm.pt" --background "$TINY/tiny-train.sigmf-meta" \
    --data "$TINY/tiny-test.sigmf-meta" --frames 33 --threads 2
