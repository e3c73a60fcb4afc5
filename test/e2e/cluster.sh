#!/bin/bash
# Start a throw-away PostgreSQL with fp_attribution preloaded on a free
# port (unix socket in a private directory), run the given command with
# PGHOST/PGPORT/PGDATA set, then stop and remove the server.
set -euo pipefail
bindir=$(pg_config --bindir)
dir=$(mktemp -d /tmp/fp_otlp_e2e.XXXXXX)
export PGDATA="$dir/data" PGHOST="$dir" PGDATABASE=postgres
export PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
	"$bindir/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

"$bindir/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
cat >> "$PGDATA/postgresql.conf" <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
unix_socket_directories = '$dir'
port = $PGPORT
fp_attribution.otlp_endpoint = 'http://127.0.0.1:9'
fp_attribution.otlp_metric_interval = 300
fp_attribution.otlp_schedule_delay = 200
fp_attribution.otlp_timeout = 2000
log_min_messages = ${E2E_LOG_LEVEL:-log}
${E2E_EXTRA_CONF:-}
CONF
"$bindir/pg_ctl" -D "$PGDATA" -l "$dir/server.log" -w start >/dev/null
psql -XAtq -c "CREATE EXTENSION fp_attribution" >/dev/null
status=0
"$@" || status=$?
if [ $status -ne 0 ] && [ -n "${E2E_SHOW_LOG:-}" ]; then tail -50 "$dir/server.log"; fi
exit $status
