#!/bin/bash
# Benchmark of the OTLP exporter, on a private server (test/e2e/cluster.sh)
# with the test receiver on 127.0.0.1.  Assumes "make install" was done.
# Run as root (drops to postgres) or postgres:
#   test/bench/export.sh [seconds per pgbench run, default 10]
# Prints:
#   - pgbench TPS of attribution.track_click with the collector up and down,
#     alternated twice in the same run, and the ratio down/up (target
#     >= 0.97: a dead collector must not slow transactions down);
#   - export throughput: spans per second encoded and sent while draining a
#     backlog (export paused during pgbench, then resumed), and the mean
#     duration of one export request (seed SLO: < 100 ms).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-10}
# room for the whole backlog of the drain measurement
export E2E_EXTRA_CONF="fp_attribution.max_spans = 200000
fp_attribution.max_logs = 200000"
if [ "$(id -u)" = 0 ]; then
	exec su postgres -s /bin/bash -c "E2E_EXTRA_CONF='$E2E_EXTRA_CONF' bash '$here/../e2e/cluster.sh' bash '$here/export_inner.sh' $secs"
fi
exec bash "$here/../e2e/cluster.sh" bash "$here/export_inner.sh" "$secs"
