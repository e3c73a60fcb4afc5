# Shared by the export benchmarks, inside cluster.sh; source it, don't run
# it.  start_discard_receiver NAME: starts discard_receiver.js on two
# ephemeral ports, $http_port (HTTP) and $grpc_port (gRPC), in a new
# directory $work, both gone on exit, and defines q SQL (one psql query,
# unaligned).
start_discard_receiver() {
	work=$(mktemp -d "/tmp/fp_$1.XXXXXX")
	node "$here/discard_receiver.js" > "$work/ready" &
	rcv=$!
	trap 'kill $rcv 2>/dev/null; rm -rf "$work"' EXIT
	for _ in $(seq 50); do grep -q ready "$work/ready" && break; sleep 0.1; done
	read -r _ http_port grpc_port < "$work/ready"
}
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
