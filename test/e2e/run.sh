#!/bin/bash
# End-to-end tests of the OTLP exporter: a private PostgreSQL with
# fp_attribution preloaded and the test receiver (test/otlp_receiver) on
# 127.0.0.1, which decodes with the official OTLP schema.  Assumes
# "make install" was done.  Run as root (drops to postgres) or postgres.
# Each script gets its own server (otlp_tls_e2e.js: TLS, mutual TLS and
# gRPC retry answers; lifecycle_e2e.js: the lifecycle metrics).  Prints
# one PASS/FAIL line per test; exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rcv="$here/../otlp_receiver"

if [ ! -d "$rcv/node_modules/@opentelemetry/otlp-transformer" ]; then
	(cd "$rcv" && npm ci --no-audit --no-fund --silent)
fi
bash "$here/latin1.sh" || true	# its FAIL lines count in test/check.sh
status=0
for script in otlp_e2e.js otlp_tls_e2e.js lifecycle_e2e.js; do
	if [ "$(id -u)" = 0 ]; then
		su postgres -s /bin/bash -c "bash '$here/cluster.sh' node '$here/$script'" || status=1
	else
		bash "$here/cluster.sh" node "$here/$script" || status=1
	fi
done
exit $status
