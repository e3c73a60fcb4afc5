# Shared by postbacks.sh and the callgrind benchmarks of postbacks; source it
# inside the benchmark's cluster (PG* variables set by e2e/cluster.sh).

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

# The callgrind benchmarks, which restart the server under valgrind: sets
# bindir and work (a new directory named after $1), starts the sink, adds
# the endpoint, and stops the sink and the server, however it runs, at
# exit (KEEP=1 keeps the directory).
start_callgrind_bench() {
	bindir=$(pg_config --bindir)
	work=$(mktemp -d "/tmp/$1.XXXXXX")
	start_sink "$work"
	trap 'kill $rcv_pid 2>/dev/null; "$bindir/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
	add_endpoint
}

# Restart the server under callgrind, each process's counts written to
# $1.<pid>, its log to $2, further valgrind options after them; returns
# once it accepts connections.
restart_under_callgrind() {
	local out=$1 log=$2
	shift 2
	"$bindir/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
	valgrind --tool=callgrind --callgrind-out-file="$out.%p" "$@" \
		"$bindir/postgres" -D "$PGDATA" > "$log" 2>&1 &
	for _ in $(seq 600); do pg_isready -q && break; sleep 0.5; done
}

# Stop the server under callgrind (which writes its counts then) and start
# it as usual, its log to $1.
restart_plain() {
	"$bindir/pg_ctl" -D "$PGDATA" -m fast -w -t 600 stop >/dev/null
	"$bindir/pg_ctl" -D "$PGDATA" -l "$1" -w start >/dev/null
}
