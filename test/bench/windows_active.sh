#!/bin/bash
# affiliate.windows.active must cost what the open windows cost, not what
# all clicks and conversions cost.  Loads TOTAL clicks (default 5,000,000;
# first argument) through a COPY (a restore: rows only), of which OPEN
# (default 20,000) have a window still open, and attributed conversions for
# one click in ten, then prints for attribution.windows_active() and, as the
# baseline measured on the same data, the NOT EXISTS form of 1.0:
#   - the plan and buffers (EXPLAIN ANALYZE of the function's query),
#   - instructions per call, counted by callgrind in a single-user backend
#     ((11 calls - 1 call) / 10, so start-up cancels out).
# Run as root after `make install`; about 7 minutes at 5 M clicks.
set -euo pipefail

total=${1:-5000000}
open=${OPEN:-20000}
. "$(dirname "$0")/scratch_server.sh"
scratch_server_start windows 'max_wal_size = 4GB'

# Click i's window ends (open - i) seconds from now: the last OPEN are open
clicks="SELECT pg_catalog.gen_random_uuid(), 'aff-' || i % 50, 'v-' || i,
	now() - interval '1 day', now() + ($open - i) * interval '1 second',
	'4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', now()
	FROM generate_series(1, $total) AS i"
cols="click_id, affiliate_id, visitor_id, clicked_at, window_ends_at, trace_id, span_id, recorded_at"
as_pg "$bin/psql -X -q -h $tmp -d postgres -c \"COPY ($clicks) TO STDOUT\" |
	$bin/psql -X -q -h $tmp -d postgres -c \"COPY attribution.clicks ($cols) FROM STDIN\""
conversions="SELECT 'o-' || click_id, click_id, affiliate_id, window_ends_at, 100, true,
	'4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7'
	FROM attribution.clicks WHERE visitor_id LIKE '%0'"
cols="order_id, click_id, affiliate_id, window_ends_at, revenue_cents, attributed, trace_id, span_id"
as_pg "$bin/psql -X -q -h $tmp -d postgres -c \"COPY ($conversions) TO STDOUT\" |
	$bin/psql -X -q -h $tmp -d postgres -c \"COPY attribution.conversions ($cols) FROM STDIN\""
psql -c "VACUUM ANALYZE attribution.clicks" -c "VACUUM ANALYZE attribution.conversions"
echo "clicks: $(psql -c 'SELECT count(*) FROM attribution.clicks'), conversions: $(psql -c 'SELECT count(*) FROM attribution.conversions'), windows open: $open"

# The function's body, and 1.0's body as the baseline
current=$(psql -c "SELECT prosrc FROM pg_proc WHERE oid = 'attribution.windows_active'::regproc")
baseline="SELECT pg_catalog.count(*) FROM attribution.clicks c
	WHERE c.window_ends_at > pg_catalog.now()
	  AND NOT EXISTS (SELECT FROM attribution.conversions v
	                   WHERE v.advertiser_id = c.advertiser_id
	                     AND v.click_id = c.click_id AND v.attributed)"
for q in current baseline; do
	echo "== $q: windows_active = $(psql -c "${!q}")"
	psql -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY OFF, COSTS OFF) ${!q}" | sed 's/^/    /'
done
as_pg "$bin/pg_ctl -D $tmp/data -w stop" >/dev/null

instructions() {
	local q=$1 n=$2
	for i in $(seq 1 "$n"); do echo "$q;"; done > "$tmp/in.sql"
	as_pg "valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		'$bin/postgres' --single -D '$tmp/data' postgres < '$tmp/in.sql' >/dev/null 2>'$tmp/err'"
	grep -q ERROR "$tmp/err" && { cat "$tmp/err" >&2; exit 1; }
	grep -oP 'Collected : \K[0-9]+' "$tmp/err"
}
for q in current baseline; do
	one=$(instructions "$(echo ${!q})" 1)
	eleven=$(instructions "$(echo ${!q})" 11)
	echo "$q: $(( (eleven - one) / 10 )) instructions per call"
done
