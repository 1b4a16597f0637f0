#!/usr/bin/env bash
# The main job (README): set up .venv if needed, then run the pipeline on the
# embedded default (Cu with the EMT oracle, local Dask workers, SQLite).
# Extra arguments go to `mlip-autopipec run`, e.g. --workdir /tmp/cu.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$root/.venv/bin/mlip-autopipec" run examples/cu_emt.yaml "$@"
