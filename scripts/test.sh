#!/usr/bin/env bash
# The test command (README): sets up .venv if needed, makes sure Quantum ESPRESSO
# is there for the real pw.x tests, starts a local SLURM cluster and PostgreSQL
# server (as root), runs the checks (lint-imports, ruff, ruff format, mypy), then the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k database -x`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh

if ! command -v pw.x >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] pw.x not found: installing Debian's quantum-espresso and quantum-espresso-data" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq quantum-espresso quantum-espresso-data >/dev/null
  else
    echo "[test] pw.x not found and cannot install it here (needs root and apt-get): the Quantum ESPRESSO tests will skip" >&2
  fi
fi

# The report's page is checked in a real browser (headless chromium): install Debian's when missing.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] chromium not found: installing Debian's chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
  else
    echo "[test] chromium not found and cannot install it here (needs root and apt-get): the browser test will skip (fail under CI=true)" >&2
  fi
fi

# The `slurm` and `postgres` tests need a running scheduler and database server: start local ones
# when this is root (both scripts install what is missing with apt-get, and return at once when up).
# Elsewhere those tests skip, or fail under CI=true.
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  bash scripts/start_local_slurm.sh || echo "[test] could not start the local SLURM cluster: the slurm tests will skip (fail under CI=true)" >&2
  bash scripts/start_local_postgres.sh || echo "[test] could not start the local PostgreSQL server: the postgres tests will skip (fail under CI=true)" >&2
else
  echo "[test] not root or no apt-get: no local SLURM cluster / PostgreSQL server; those tests will skip (fail under CI=true)" >&2
fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export MPLBACKEND=Agg
# The checks first, each in seconds, before any test runs (README, Development):
# the layers (pyproject.toml [tool.importlinter]): an upward import or a cycle fails here;
PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" "$root/.venv/bin/lint-imports" --no-logo --no-cache pyproject.toml
# lint and format ([tool.ruff]) and types ([tool.mypy], src/).
echo "[test] ruff check, ruff format --check, mypy" >&2
"$root/.venv/bin/ruff" check --no-cache src tests benchmarks
"$root/.venv/bin/ruff" format --check --no-cache src tests benchmarks
"$root/.venv/bin/mypy" --no-incremental
# The tests on 2 worker processes (pytest-xdist, --dist loadfile: a file's tests share a worker, so a module's
# fixtures are made once), then the SLURM tests one after another (one node: a test's job must not wait behind
# another test's jobs). MLIP_TEST_WORKERS=0 runs the first part in this process. Exit code 5 (no test selected,
# e.g. by -k) of either part is not a failure.
py="$root/.venv/bin/python"
status=0
"$py" -m pytest -n "${MLIP_TEST_WORKERS:-2}" --dist loadfile -m "not slurm" "$@" || status=$?
[ "$status" -eq 5 ] && status=0
slurm_status=0
"$py" -m pytest -m slurm "$@" || slurm_status=$?
[ "$slurm_status" -eq 5 ] && slurm_status=0
[ "$status" -ne 0 ] && exit "$status"
exit "$slurm_status"
