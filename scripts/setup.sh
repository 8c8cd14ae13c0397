#!/usr/bin/env bash
# Idempotent set-up of gr-shapft on Debian 12: system packages, .venv, Python
# dependencies, and the module built and installed into .venv. Each step is skipped
# when it is already done, so running this again costs a few seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
BUILD="$ROOT/build"
cd "$ROOT"

# python3-pyqt5.qtsvg: gr-qtgui imports matplotlib's Qt backend (the venv's matplotlib),
# which needs QtSvg; without it every Companion/grcc run warns that matplotlib is missing.
# Not python3-matplotlib: its mpl_toolkits would shadow the venv's and break mplot3d.
APT_PACKAGES=(gnuradio gnuradio-dev pybind11-dev cmake make g++ pkg-config python3-venv python3-dev
              xvfb xauth imagemagick gir1.2-gtk-3.0 python3-pyqt5.qtsvg)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's GNU Radio is built for /usr/bin/python3; the venv must use that interpreter.
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python dependencies (requirements.txt)"
    # torch first and pinned: the CPU wheel is on this disk; a resolver left free picks a CUDA build.
    "$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0"
    "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
    echo "$want" > "$stamp"
fi

mkdir -p "$BUILD"
run_logged() {  # quiet unless it fails
    local log="$BUILD/setup-$1.log"; shift
    "$@" > "$log" 2>&1 || { cat "$log"; say "failed: $*"; exit 1; }
}
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    say "configuring the module"
    run_logged configure cmake -S "$ROOT" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" \
        -DPYTHON_EXECUTABLE="$PY"
fi
say "building and installing the module into $VENV"
run_logged build cmake --build "$BUILD" -j"$(nproc)"
run_logged install cmake --install "$BUILD"
"$PY" -c "from gnuradio import shapft" || { say "the installed module does not import"; exit 1; }
say "ready: $VENV/bin/shapft, $VENV/bin/python"
