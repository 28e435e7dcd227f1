#!/usr/bin/env bash
# What bench/bench_render.py needs for its llvmpipe reference: Mesa's EGL/GL drivers and moderngl.
# moderngl is not a dependency of fk; it only provides the side-by-side reference figures.
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update
$SUDO apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri libgles2
"${PYTHON:-$(dirname "$0")/../.venv/bin/python}" -m pip install moderngl
