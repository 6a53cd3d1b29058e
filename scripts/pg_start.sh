#!/usr/bin/env bash
# Install Debian's PostgreSQL if missing, start a cluster on 127.0.0.1:5432 and print its URL.
# Idempotent: an already running server is reused. Used by .ci/run and for local store tests.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
V=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$V main$"; then
    pg_createcluster "$V" main >/dev/null
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    pg_ctlcluster "$V" main start
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
echo "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
