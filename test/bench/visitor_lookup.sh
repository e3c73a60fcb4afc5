#!/bin/bash
# Conversion by visitor at 1 M clicks: the lookup of the visitor's latest
# click must read one index entry whatever the number of the visitor's
# clicks.  Loads N clicks (default 1,000,000; first argument) through a
# COPY (a restore, so no receipts: only the lookup is measured), of which
# visitor "heavy" has 1,000 and visitor "light" one, then prints
#   - the buffers the trigger's lookup touches (its cached generic plan),
#   - the median time of ROUNDS (default 5) rounds of 500 conversions by
#     each visitor, and their ratio (1.0 = independent of the visitor's
#     clicks).
# Run as root after `make install`.
set -euo pipefail

n=${1:-1000000}
rounds=${ROUNDS:-5}
. "$(dirname "$0")/scratch_server.sh"
scratch_server_start visitor

rows="SELECT pg_catalog.gen_random_uuid(), 'aff-' || i % 50,
	CASE WHEN i <= 1000 THEN 'heavy' WHEN i = 1001 THEN 'light' ELSE 'v-' || i % ($n / 3) END,
	now() - (i % 86400) * interval '1 second', now() + interval '30 days',
	'4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', now()
	FROM generate_series(1, $n) AS i"
cols="click_id, affiliate_id, visitor_id, clicked_at, window_ends_at, trace_id, span_id, recorded_at"
as_pg "$bin/psql -X -q -h $tmp -d postgres -c \"COPY ($rows) TO STDOUT\" |
	$bin/psql -X -q -h $tmp -d postgres -c \"COPY attribution.clicks ($cols) FROM STDIN\""
psql -c "VACUUM ANALYZE attribution.clicks"
echo "clicks loaded: $(psql -c 'SELECT count(*) FROM attribution.clicks')"

# The trigger's query, as its cached generic plan runs it
plan() {
	psql <<SQL | grep -E 'Buffers|rows=' | head -3 | sed 's/^ */    /'
SET plan_cache_mode = force_generic_plan;
PREPARE lookup(text, timestamptz) AS
	SELECT * FROM attribution.clicks c
	 WHERE c.advertiser_id = 'default' AND c.visitor_id = \$1 AND c.clicked_at <= \$2 AND c.window_ends_at > \$2
	 ORDER BY c.clicked_at DESC, c.click_id DESC LIMIT 1;
EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY OFF, COSTS OFF) EXECUTE lookup('$1', now());
SQL
}
for v in heavy light; do
	echo "lookup of visitor $v:"
	plan $v
done

# Wall-clock of conversions by each visitor, interleaved rounds
round() {
	psql <<SQL
\\timing on
SELECT count(attribution.track_conversion('$1-' || $2 || '-' || i, 100, visitor_id => '$1')) FROM generate_series(1, 500) AS i;
SQL
}
ms() { grep -oP 'Time: \K[0-9.]+' ; }
heavy=() light=()
for r in $(seq 1 "$rounds"); do
	heavy+=("$(round heavy "$r" | ms)")
	light+=("$(round light "$r" | ms)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
h=$(median "${heavy[@]}")
l=$(median "${light[@]}")
echo "500 conversions by visitor: heavy (1,000 clicks) ${h} ms, light (1 click) ${l} ms, median of $rounds"
awk -v h="$h" -v l="$l" 'BEGIN {printf "ratio heavy/light: %.2f (1.00 = independent of the visitor'"'"'s clicks)\n", h / l}'
