#!/bin/bash
# The main job, on a fresh Debian 12 machine, as root: install what is
# needed, build and install fp_attribution, start an OTLP collector (the
# test receiver, which decodes with the official schema) and a throw-away
# PostgreSQL 15 with the extension preloaded and exporting to it, send
# sample clicks and conversions, and show what they produced, in the
# database and at the collector.  Everything started is stopped and removed
# at exit.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/test/lib.sh"
build=$(stage_tree "$src")
rcv_pid=
cleanup() {
	as_postgres "/usr/lib/postgresql/15/bin/pg_ctl -D $build/data -m immediate stop" >/dev/null 2>&1 || true
	[ -z "$rcv_pid" ] || kill "$rcv_pid" 2>/dev/null || true
	rm -rf "$build"
}
trap cleanup EXIT
as_postgres "make -s -C '$build' >/dev/null"
make -s -C "$build" install >/dev/null

# The collector: port 0 lets it pick free ports, which it prints as one
# JSON line once it listens; read from a pipe, so no polling.
rcv=$build/test/otlp_receiver
[ -d "$rcv/node_modules" ] || (cd "$rcv" && npm ci --no-audit --no-fund --silent)
exec 3< <(exec node "$rcv/receiver.js")
rcv_pid=$!
read -r -t 10 -u 3 ports || { echo "the OTLP receiver did not start" >&2; exit 1; }
exec 3<&-
http=${ports#*\"http\":}
http=${http%%[!0-9]*}

# Short export delays so the demo does not wait for the 5 s / 60 s defaults.
port=5432  # private socket directory, so no clash with other servers
as_postgres "
	set -e
	/usr/lib/postgresql/15/bin/initdb -D '$build/data' -A trust >/dev/null
	cat >> '$build/data/postgresql.conf' <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
port = $port
unix_socket_directories = '$build'
fp_attribution.otlp_endpoint = 'http://127.0.0.1:$http'
fp_attribution.otlp_schedule_delay = 200
fp_attribution.otlp_metric_interval = 1000
CONF
	/usr/lib/postgresql/15/bin/pg_ctl -D '$build/data' -l '$build/server.log' -w start >/dev/null
	psql -X -q -h '$build' -p $port -d postgres -v ON_ERROR_STOP=1 -f '$build/test/demo.sql'
"

echo '== what the collector received, decoded with the official OTLP schema'
curl -sSf "http://127.0.0.1:$http/control/dump" | node "$build/test/demo_collector.js"
