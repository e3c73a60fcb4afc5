#!/bin/bash
# The main job, on a fresh Debian 12 machine, as root: install what is
# needed, build and install fp_attribution, start a throw-away PostgreSQL 15
# with the extension preloaded, send sample clicks and conversions, and show
# what they produced.  The server and its data directory are removed at exit.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/test/lib.sh"
build=$(stage_tree "$src")
trap 'as_postgres "/usr/lib/postgresql/15/bin/pg_ctl -D $build/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$build"' EXIT
as_postgres "make -s -C '$build' >/dev/null"
make -s -C "$build" install >/dev/null

port=5432  # private socket directory, so no clash with other servers
as_postgres "
	set -e
	/usr/lib/postgresql/15/bin/initdb -D '$build/data' -A trust >/dev/null
	cat >> '$build/data/postgresql.conf' <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
port = $port
unix_socket_directories = '$build'
CONF
	/usr/lib/postgresql/15/bin/pg_ctl -D '$build/data' -l '$build/server.log' -w start >/dev/null
	psql -X -q -h '$build' -p $port -d postgres -v ON_ERROR_STOP=1 -f '$build/test/demo.sql'
"
