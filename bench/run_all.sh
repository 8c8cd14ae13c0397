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
    local start=$SECONDS
    { echo "\$ ${*//$ROOT\//}"; echo "# $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"; "$@"
      echo "# wall $((SECONDS - start)) s"; } \
        2>&1 | grep --line-buffered -v 'set_min_output_buffer' | sed -u 's/.*\r//' | tee "$OUT/$name.txt"
}
cd "$ROOT"
run channel_model "$PY" bench/bench_channel_model.py
run models "$PY" bench/bench_models.py --threads 2
run blocks "$PY" bench/bench_blocks.py --cnn-lstm "$MODELS/cnn_lstm.pt" --compact "$MODELS/transformer_compact_attention_ard.pt"
run blocks_detector "$PY" bench/bench_blocks.py --only detector:cnn_lstm --detector "$MODELS/attack_detector.pt"
run blocks_smoothing "$PY" bench/bench_blocks.py --smoothing 10 --only sink:cnn_lstm --cnn-lstm "$MODELS/cnn_lstm.pt"
run blocks_smoothing100 "$PY" bench/bench_blocks.py --smoothing 100 --only sink:cnn_lstm --cnn-lstm "$MODELS/cnn_lstm.pt"
run blocks_1thread "$PY" bench/bench_blocks.py --threads 1 --cnn-lstm "$MODELS/cnn_lstm.pt" --compact "$MODELS/transformer_compact_attention_ard.pt"
# The noisiest row (this host's 2-thread speed drifts), again with more rounds.
run blocks_sink_compact "$PY" bench/bench_blocks.py --only sink:transformer_compact --repeats 7 \
    --cnn-lstm "$MODELS/cnn_lstm.pt" --compact "$MODELS/transformer_compact_attention_ard.pt"
run blocks_onnx "$PY" bench/bench_blocks.py --onnx --cnn-lstm "$MODELS/cnn_lstm.pt" \
    --compact "$MODELS/transformer_compact_attention_ard.pt"
run blocks_precision "$PY" bench/bench_blocks.py --compare-precision --cnn-lstm "$MODELS/cnn_lstm.pt" \
    --compact "$MODELS/transformer_compact_attention_ard.pt"
run precision "$PY" bench/bench_precision.py --threads 2
run distill_sink "$PY" bench/bench_distill_sink.py --student "$MODELS/transformer_compact_attention_ard.pt" --cnn-lstm "$MODELS/cnn_lstm.pt"
# SHAP needs the tiny dataset (about 45 s to generate; kept for the next run).
TINY="$OUT/tiny"
! wanted shap || [[ -f "$TINY/adv-data.sigmf-meta" ]] || "$ROOT/.venv/bin/shapft" generate --preset tiny --out "$TINY" --seed 1 --force --quiet
run shap "$PY" bench/bench_shap.py --model "$MODELS/cnn_lstm.pt" --background "$TINY/tiny-train.sigmf-meta" \
    --data "$TINY/tiny-test.sigmf-meta" --frames 33 --threads 2
# The robustness leaderboard of the shipped models, default settings, on the `small` preset's
# test split (generating it takes about half an hour; kept), then its seconds per model, PSR and
# attack, and the check against a 50-step PGD with 5 restarts at -20 dB.
SMALL="$OUT/small"
! { wanted robustness || wanted train_precision; } || [[ -f "$SMALL/test.sigmf-meta" ]] \
    || "$ROOT/.venv/bin/shapft" generate --preset small --out "$SMALL" --seed 1 --force --quiet
run robustness "$ROOT/.venv/bin/shapft" robustness --models "$MODELS"/*.pt --data "$SMALL/test.sigmf-meta" \
    --out "$OUT/leaderboard" --force --quiet
run robustness_check "$PY" bench/bench_robustness.py --leaderboard "$OUT/leaderboard" --check-pgd50 --psr-db -20
run train_precision bash bench/bench_train_precision.sh "$SMALL" "$OUT/train_precision"
# Streaming: a 2 GB RadioML 2018.01a-layout file made, imported and trained on for one epoch
# (about 4.3 GB of temporary files under the system's temporary directory, deleted at the end).
run bench_streaming "$PY" bench/bench_streaming.py --gigabytes 2 --threads 1
