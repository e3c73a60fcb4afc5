# Shared by postbacks.sh and postback_worker_callgrind.sh; source it inside
# the benchmark's cluster (PG* variables set by e2e/cluster.sh).

q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
setting() {
	q "ALTER SYSTEM SET $1 = $2" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
}

# Build and start postback_sink.c in directory $1 on ${PORT:-0} (0: any
# free port); sets rcv_pid and port.
start_sink() {
	cc -O2 -o "$1/postback_sink" "$here/postback_sink.c"
	"$1/postback_sink" "${PORT:-0}" > "$1/port" &
	rcv_pid=$!
	for _ in $(seq 50); do grep -q ready "$1/port" && break; sleep 0.1; done
	port=$(sed -n 's/^ready //p' "$1/port")
}

# The benchmark's endpoint: affiliate aff-pb, a signed POST to the sink;
# sets id.
add_endpoint() {
	id=$(q "INSERT INTO attribution.postback_endpoints (affiliate_id, url_template, method)
		VALUES ('aff-pb', 'http://127.0.0.1:$port/ok/pb?o={order_id}&s={status}', 'POST') RETURNING endpoint_id")
	q "INSERT INTO attribution.postback_secrets (endpoint_id, secret) VALUES ($id, 'bench-secret-0123456789')" >/dev/null
}
