# Shared by the export benchmarks, inside cluster.sh; source it, don't run
# it.  start_discard_receiver NAME: in a new directory $work (gone on
# exit), builds and starts discard_receiver.c for OTLP/HTTP on $http_port
# and discard_receiver.js for gRPC on $grpc_port, both on 127.0.0.1 and
# both stopped on exit; FP_BENCH_PORT=P puts them on P and P + 1 (default:
# ephemeral ports).  Also defines q SQL (one psql query, unaligned).
start_discard_receiver() {
	local base=${FP_BENCH_PORT:-0} grpc=0
	[ "$base" = 0 ] || grpc=$((base + 1))
	work=$(mktemp -d "/tmp/fp_$1.XXXXXX")
	${CC:-cc} -O2 -o "$work/discard_receiver" "$here/discard_receiver.c"
	"$work/discard_receiver" "$base" > "$work/ready_http" &
	rcv_http=$!
	node "$here/discard_receiver.js" 0 "$grpc" > "$work/ready" &
	rcv=$!
	trap 'kill $rcv $rcv_http 2>/dev/null; rm -rf "$work"' EXIT
	for _ in $(seq 50); do grep -q ready "$work/ready" && grep -q ready "$work/ready_http" && break; sleep 0.1; done
	read -r _ _ grpc_port < "$work/ready"
	read -r _ http_port < "$work/ready_http"
}
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
