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
TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" - <<'PY'
import numpy, pandas, ase, pyace, tensorpotential  # noqa: F401  fail loudly if the stack is broken
import torch, chgnet, sevenn  # noqa: F401
assert numpy.__version__.startswith("2.") and int(numpy.__version__.split(".")[1]) < 4, numpy.__version__
assert pandas.__version__.startswith("2."), pandas.__version__
assert torch.__version__ == "2.13.0+cpu", torch.__version__
PY
echo "$want" > "$stamp"
echo "[setup] done" >&2
