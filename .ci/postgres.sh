#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests (fsync off: speed over durability, it is
# deleted with the machine) and prints `export NIGHTSHIFT_TEST_DATABASE_URL=…` for `.ci/run` to
# evaluate. Run as root it runs the cluster as the `postgres` user, as Debian's package expects.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then echo "postgresql is not installed" >&2; exit 1; fi
dir=$(mktemp -d /tmp/nightshift-pg.XXXXXX)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
as_db() { if [ "$(id -u)" = "0" ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }
if [ "$(id -u)" = "0" ]; then chown postgres "$dir"; fi
as_db "$bin/initdb -D $dir/data -A trust -U postgres --no-sync >$dir/initdb.log 2>&1"
as_db "$bin/pg_ctl -D $dir/data -l $dir/server.log -w -o '-p $port -F -k $dir -c listen_addresses=127.0.0.1' start >/dev/null"
echo "export NIGHTSHIFT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$port/postgres"
