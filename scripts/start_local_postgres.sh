#!/usr/bin/env bash
# Starts a local PostgreSQL server for the `postgres` tests (idempotent, needs root).
#
# Installs Debian's postgresql (15 on Debian 12) when missing, starts its "main"
# cluster with pg_ctlcluster, and makes a test role that may create databases
# (each test makes its own and drops it) plus a database of the same name.
#
# Credentials: the role's password is random, made once, and written with the
# connection URL to a root-only file (never printed):
#     ${MLIP_AUTOPIPEC_TEST_PG_URL_FILE:-/var/lib/mlip-autopipec/test_pg_url}
# The tests read MLIP_AUTOPIPEC_TEST_PG_URL when set, else that file.
#
# Environment: PG_TEST_ROLE (default mlip_test), PG_START_TIMEOUT (s, default 60).
set -euo pipefail

log() { echo "[postgres] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

role="${PG_TEST_ROLE:-mlip_test}"
url_file="${MLIP_AUTOPIPEC_TEST_PG_URL_FILE:-/var/lib/mlip-autopipec/test_pg_url}"
timeout_s="${PG_START_TIMEOUT:-60}"
case "$role" in *[!a-z0-9_]*|"") die "PG_TEST_ROLE must be lower-case letters, digits and _" ;; esac

[ "$(id -u)" = "0" ] || die "needs root (it installs packages and starts the server)"

# --- install -----------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "postgresql is missing and apt-get is not available to install it"
  log "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi

# --- cluster -----------------------------------------------------------------
version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
[ -n "$version" ] || die "no PostgreSQL server under /usr/lib/postgresql"
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  log "creating cluster $version/main"
  pg_createcluster "$version" main >/dev/null
fi
port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
  log "starting cluster $version/main on port $port"
  pg_ctlcluster "$version" main start
fi
deadline=$((SECONDS + timeout_s))
until pg_isready -q -h 127.0.0.1 -p "$port"; do
  [ "$SECONDS" -lt "$deadline" ] || die "the server did not accept connections within ${timeout_s}s (see /var/log/postgresql/)"
  sleep 0.5
done

# --- role, database, credentials file ----------------------------------------
psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }

url_works() {
  [ -s "$url_file" ] || return 1
  # The password goes to psql in its environment (readable by root only), never on the command line.
  local url pw
  url="$(cat "$url_file")"
  case "$url" in "postgresql://$role:"*"@127.0.0.1:$port/$role") ;; *) return 1 ;; esac
  pw="${url#postgresql://$role:}"
  pw="${pw%@127.0.0.1:$port/$role}"
  PGPASSWORD="$pw" PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$port" -U "$role" -d "$role" -c 'select 1' >/dev/null 2>&1
}

if url_works; then
  log "ready: PostgreSQL $version on 127.0.0.1:$port, role $role (URL in $url_file)"
  exit 0
fi

password="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Sent on stdin, so it never shows in the process list or a log.
psql_admin -d postgres <<SQL
DO \$\$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    CREATE ROLE $role LOGIN CREATEDB;
  END IF;
END\$\$;
ALTER ROLE $role WITH LOGIN CREATEDB PASSWORD '$password';
SQL
if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$role'" | grep -q 1; then
  psql_admin -d postgres -c "CREATE DATABASE $role OWNER $role" >/dev/null
fi
mkdir -p "$(dirname "$url_file")"
umask 077
printf 'postgresql://%s:%s@127.0.0.1:%s/%s\n' "$role" "$password" "$port" "$role" > "$url_file"
chmod 600 "$url_file"
url_works || die "the test role cannot connect with the new credentials"
log "ready: PostgreSQL $version on 127.0.0.1:$port, role $role (URL in $url_file)"
