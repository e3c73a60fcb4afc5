#!/bin/bash
# The extension joins the trace of a real instrumented client: a Node.js
# application with the OpenTelemetry SDK, @opentelemetry/instrumentation-pg
# and the pg driver (client_e2e.js), against a private PostgreSQL with
# fp_attribution preloaded (test/e2e/cluster.sh) and the official-schema
# receiver (test/otlp_receiver) on 127.0.0.1.  Assumes "make install" was
# done.  Run as root (drops to postgres) or postgres.  Prints one PASS/FAIL
# line per test; exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

for d in "$here" "$here/../otlp_receiver"; do
	[ -d "$d/node_modules" ] || (cd "$d" && npm ci --no-audit --no-fund --silent)
done
# bounded: the test's own waits are, this is the safety net
run="bash '$here/../e2e/cluster.sh' timeout 300 node '$here/client_e2e.js'"
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "$run"
fi
exec bash -c "$run"
