#!/usr/bin/env bash
# Stops the one-node SLURM cluster of scripts/start_local_slurm.sh (slurmd, slurmctld; munged stays,
# other programs may use it).  Used to check that the `slurm` tests fail under CI=true without a scheduler.
set -euo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    echo "[slurm] stopped $(basename "$pidfile" .pid) ($pid)" >&2
  fi
done
