#!/usr/bin/env bash
# Set up whatever is missing, then run the whole test suite (QA and pytest) through ctest.
# Extra arguments go to ctest, e.g. `bash scripts/test.sh -R qa_` or `-L pytest`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT/build"
ctest --output-on-failure --timeout 1500 -j "$(nproc)" "$@"
