#!/bin/bash
# test/citus/cluster.sh COMMAND...: start a throw-away Citus cluster on
# 127.0.0.1 (a coordinator and two workers, each a private initdb'd server
# with citus and fp_attribution preloaded), run COMMAND with the PG*
# variables pointing at the coordinator, then stop and remove the cluster,
# also when COMMAND or the set-up fails.
#
# Run as the postgres OS user (the server refuses root), after citus
# (../shared/citus/build.sh) and fp_attribution are installed.  Exported
# to COMMAND (every node has fp_attribution.signing_key_file set to one
# shared key, CITUS_DIR/signing.pem):
#   PGHOST, PGPORT, PGDATABASE, PGUSER  the coordinator (TCP, 127.0.0.1)
#   CITUS_DIR                           the cluster's directory (logs: */server.log)
#   CITUS_WORKER1_PORT, CITUS_WORKER2_PORT
# Ports are free ones picked by the kernel unless CITUS_PORTS="c w1 w2"
# names them.  CITUS_EXTRA_CONF is appended to every node's
# postgresql.conf; CITUS_SHOW_LOG=1 prints the logs' tails on failure.
set -euo pipefail
bindir=$(pg_config --bindir)
dir=$(mktemp -d /tmp/fp_citus.XXXXXX)
nodes=(coordinator worker1 worker2)
if [ -n "${CITUS_PORTS:-}" ]; then
	read -r -a ports <<<"$CITUS_PORTS"
else
	# three distinct free ports, all bound at once so none repeats
	read -r -a ports <<<"$(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
fi

cleanup() {
	local status=$?
	if [ $status -ne 0 ] && [ -n "${CITUS_SHOW_LOG:-}" ]; then
		for n in "${nodes[@]}"; do
			[ -f "$dir/$n/server.log" ] && { echo "=== $n"; tail -40 "$dir/$n/server.log"; }
		done
	fi
	for n in "${nodes[@]}"; do
		[ -f "$dir/$n/data/postmaster.pid" ] &&
			"$bindir/pg_ctl" -D "$dir/$n/data" -m immediate stop >/dev/null 2>&1
	done
	rm -rf "$dir"
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One signing key for every node (receipts are signed only when
# fp_attribution.sign_receipts is on)
openssl genpkey -algorithm ed25519 -out "$dir/signing.pem" 2>/dev/null
chmod 600 "$dir/signing.pem"
for i in 0 1 2; do
	n=${nodes[$i]}
	mkdir -p "$dir/$n"
	"$bindir/initdb" -D "$dir/$n/data" -A trust -U postgres >/dev/null
	# trust, and only on the loopback interface and the private socket
	cat > "$dir/$n/data/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
HBA
	cat >> "$dir/$n/data/postgresql.conf" <<CONF
shared_preload_libraries = 'citus, fp_attribution'	# citus must come first
listen_addresses = '127.0.0.1'
port = ${ports[$i]}
unix_socket_directories = '$dir/$n'
max_connections = 100
max_prepared_transactions = 100	# Citus commits multi-node writes with 2PC
fsync = off
full_page_writes = off
fp_attribution.signing_key_file = '$dir/signing.pem'
${CITUS_EXTRA_CONF:-}
CONF
	"$bindir/pg_ctl" -D "$dir/$n/data" -l "$dir/$n/server.log" -w start >/dev/null
	psql -XAtq -h 127.0.0.1 -p "${ports[$i]}" -U postgres -d postgres \
		-v ON_ERROR_STOP=1 -c "CREATE EXTENSION citus" >/dev/null
done

export PGHOST=127.0.0.1 PGPORT=${ports[0]} PGUSER=postgres PGDATABASE=postgres
export CITUS_DIR=$dir CITUS_WORKER1_PORT=${ports[1]} CITUS_WORKER2_PORT=${ports[2]}
# Workers first: CREATE EXTENSION fp_attribution on the coordinator is then
# propagated to them by Citus (so the extension's objects, the shells of
# its distributed tables included, exist on every node).
psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT pg_catalog.citus_set_coordinator_host('127.0.0.1', ${ports[0]});
SELECT pg_catalog.citus_add_node('127.0.0.1', ${ports[1]});
SELECT pg_catalog.citus_add_node('127.0.0.1', ${ports[2]});
CREATE EXTENSION fp_attribution;
SQL
"$@"
