#!/bin/bash
# The cluster suite: fp_attribution on a throw-away Citus cluster
# (test/citus/cluster.sh: coordinator + 2 workers on 127.0.0.1), after
# SELECT attribution.distribute().  Prints one PASS/FAIL line per check
# (test/check.sh counts them); exits non-zero on any failure.
#
# Installs the OTLP test receiver's packages (npm ci) when missing.
# Run as root: builds and installs Citus first when it is missing, with
# ../shared/citus/build.sh beside the checkout (FP_SOURCE_DIR names the
# checkout when this copy of the tree was staged elsewhere, as check.sh
# does), then drops to the postgres OS user.  As postgres, Citus must
# already be installed.  Needs fp_attribution installed (make install).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${FP_SOURCE_DIR:-$(cd "$here/../.." && pwd)}

if [ ! -f "$(pg_config --pkglibdir)/citus.so" ]; then
	build="$src/../shared/citus/build.sh"
	if [ "$(id -u)" != 0 ] || [ ! -f "$build" ]; then
		echo "FAIL citus: Citus is not installed and $build cannot be run (needs root and the script)"
		exit 1
	fi
	if ! bash "$build" >"${TMPDIR:-/tmp}/citus_build.$$.log" 2>&1; then
		tail -20 "${TMPDIR:-/tmp}/citus_build.$$.log"
		echo "FAIL citus: ../shared/citus/build.sh failed"
		exit 1
	fi
fi
# the OTLP test receiver of exported_spans.js (as test/e2e/run.sh)
rcv="$here/../otlp_receiver"
if [ ! -d "$rcv/node_modules/@opentelemetry/otlp-transformer" ] &&
	! (cd "$rcv" && npm ci --no-audit --no-fund --silent); then
	echo "FAIL citus: npm ci of test/otlp_receiver failed"
	exit 1
fi
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "PATH='$PATH' CITUS_PORTS='${CITUS_PORTS:-}' CITUS_SHOW_LOG=1 bash '$here/cluster.sh' bash '$here/tests.sh'"
fi
CITUS_SHOW_LOG=1 exec bash "$here/cluster.sh" bash "$here/tests.sh"
