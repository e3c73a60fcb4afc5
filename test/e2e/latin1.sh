#!/bin/bash
# End-to-end: the telemetry of a LATIN1 database reaches the official-schema
# OTLP receiver as valid UTF-8.  Called by run.sh (which installs the
# receiver's modules); assumes "make install" was done.  Run as root
# (drops to postgres) or postgres.  Prints one PASS/FAIL line per test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "bash '$here/latin1.sh'"
fi
exec bash "$here/cluster.sh" node "$here/latin1_e2e.js"
