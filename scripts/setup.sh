#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment at .venv and installs
# the project with its pinned scientific stack.  Idempotent: when nothing in
# pyproject.toml or this script changed since the last successful run, it
# returns in well under a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

stamp="$venv/.mlip-autopipec-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/mlip-autopipec" ]; then
  exit 0
fi

echo "[setup] installing mlip-autopipec and its stack into $venv (first run takes a few minutes)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; }
# torch first, pinned to the CPU build that lies on the machine: anything later that asks for torch finds it
# satisfied (an unpinned torch would pull a CUDA build of several GB).
pip install "torch==2.13.0"
# The project and everything it needs, TensorFlow's CPU build included, and the foundation models (extra fm:
# CHGNet and SevenNet, weights inside their wheels; the extra pins torch==2.13.0 too).
pip install -e ".[test,fm]"
# tensorpotential (pacemaker's fast TensorFlow backend) asks for tensorflow[and-cuda],
# several GB of CUDA wheels; its real requirements are in pyproject.toml, so skip its metadata.
pip install --no-deps "tf_keras==2.20.1" "tensorpotential==0.6.2.1"
# GPAW (oracle type gpaw, extra gpaw): PyPI's gpaw is a source build against Debian's libxc-dev and
# libopenblas-dev, with MPI through libopenmpi-dev (which puts mpicc on PATH; gpaw's setup.py builds its MPI
# extension when mpicc is there). Its PAW setups are the gpaw-data package, a dependency that gpaw finds by
# itself (gpaw_data.datapath(); GPAW_SETUP_PATH only adds folders in front). The build takes about 1.5 minutes on
# 2 cores; skipped when GPAW is already importable. Without root and apt-get, missing libraries are named and
# GPAW is left out (its tests then skip, and fail under CI=true).
gpaw_libs=(libxc-dev libopenblas-dev libopenmpi-dev)
if ! "$venv/bin/python" -c "import gpaw_data; from gpaw import GPAW" >/dev/null 2>&1; then
  missing=()
  for lib in "${gpaw_libs[@]}"; do dpkg -s "$lib" >/dev/null 2>&1 || missing+=("$lib"); done
  if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian's ${missing[*]} for GPAW's build" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    missing=()
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "[setup] GPAW left out: its build needs Debian's ${missing[*]} (apt-get install as root), then" \
      "'.venv/bin/python -m pip install -e .[gpaw]'" >&2
  else
    echo "[setup] building GPAW from source (about 1.5 minutes)" >&2
    pip install -e ".[gpaw]"
    "$venv/bin/python" -c "import gpaw_data; from gpaw import GPAW" \
      || { echo "[setup] GPAW did not build: see pip's messages above" >&2; exit 1; }
  fi
fi
TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" - <<'PY'
import numpy, pandas, ase, pyace, tensorpotential  # noqa: F401  fail loudly if the stack is broken
import torch, chgnet, sevenn  # noqa: F401
assert numpy.__version__.startswith("2.") and int(numpy.__version__.split(".")[1]) < 4, numpy.__version__
assert pandas.__version__.startswith("2."), pandas.__version__
assert torch.__version__ == "2.13.0+cpu", torch.__version__
PY
echo "$want" > "$stamp"
echo "[setup] done" >&2
