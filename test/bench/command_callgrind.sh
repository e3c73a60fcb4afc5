#!/bin/bash
# The command path against its floor, in instructions counted by callgrind
# in a single-user backend (stable where wall-clock ratios on a shared
# machine are not), telemetry on.  Each figure is (I(many) - I(few)) /
# (many - few) over runs that differ only in how often the measured
# statement runs, so start-up, set-up and the first calls' catalog loading
# cancel out; every run starts from a copy of the same data directory, so
# the dead catalog rows an earlier run's DROP/CREATE EXTENSION left (the
# single-user backend never vacuums) weigh on no figure.
#
#   track_click, track_conversion   prepared (PREPARE/EXECUTE), against the
#                                   floor: prepared plain INSERTs of the
#                                   very rows the command wrote (the row and
#                                   its receipt, captured from a first run)
#                                   into copies of the tables without
#                                   triggers
#   simple                          the same call as a simple-protocol
#                                   statement, against its prepared form
#   bulk                            INSERT ... SELECT of clicks through the
#                                   trigger path, against INSERT ... SELECT
#                                   of the same clicks and receipts into
#                                   the plain copies
#
# Run after `make install` (PATH leading to the pg_config of that
# installation), as root (the servers then run as postgres) or as the
# owner of the installation's data; takes several minutes.
# MANY/FEW/BULK_MANY/BULK_FEW override the counts; CLICK_ONLY=1 measures
# only track_click (telemetry on, off, and its floor).
set -euo pipefail

many=${MANY:-300}
few=${FEW:-50}
bulk_many=${BULK_MANY:-2000}
bulk_few=${BULK_FEW:-200}

dir=$(mktemp -d /tmp/fp_callgrind.XXXXXX)
trap 'rm -rf "$dir"' EXIT
bindir=$(pg_config --bindir)

# Root hands the servers to postgres (initdb refuses root); anyone else
# runs them as themselves.
if [ "$(id -u)" = 0 ]; then
	chown postgres: "$dir"
	run() {
		su postgres -s /bin/bash -c "$*"
	}
else
	run() {
		bash -c "$*"
	}
fi

# fp_attribution.telemetry in the measured runs (on unless a figure says
# otherwise)
telemetry=on

run "'$bindir/initdb' -D '$dir/data' -A trust >/dev/null"
echo "shared_preload_libraries = 'fp_attribution'" >> "$dir/data/postgresql.conf"
run "echo 'CREATE EXTENSION fp_attribution;' | '$bindir/postgres' --single -D '$dir/data' postgres >/dev/null 2>&1"
run "cp -a '$dir/data' '$dir/template'"

# Every run: a fresh extension, telemetry on, the plain copies of the
# tables (same columns, defaults, constraints and indexes; no triggers) and
# the prepared statements.  One statement per line: the single-user
# backend ends a statement at a newline.
prologue() {
	cat <<EOF
DROP SCHEMA IF EXISTS bench CASCADE;
DROP EXTENSION fp_attribution;
CREATE EXTENSION fp_attribution;
SET fp_attribution.telemetry = $telemetry;
CREATE SCHEMA bench;
CREATE TABLE bench.clicks (LIKE attribution.clicks INCLUDING ALL);
CREATE TABLE bench.conversions (LIKE attribution.conversions INCLUDING ALL);
CREATE TABLE bench.receipts (LIKE attribution.receipts INCLUDING ALL);
PREPARE click(text, text) AS SELECT FROM attribution.track_click(\$1, visitor_id => \$2);
PREPARE conversion(text, bigint, text) AS SELECT FROM attribution.track_conversion(\$1, \$2, visitor_id => \$3);
EOF
}

# Prepared plain INSERTs need their statements spelled out: the
# single-user backend has no \gexec, so build them here once.
plain_prepares() {
	local t
	for t in clicks conversions receipts; do
		echo "DO \$\$ DECLARE s text; BEGIN SELECT 'PREPARE plain_$t AS INSERT INTO bench.$t VALUES (' || string_agg('\$' || attnum, ', ' ORDER BY attnum) || ')' INTO s FROM pg_attribute WHERE attrelid = 'bench.$t'::regclass AND attnum > 0 AND NOT attisdropped; RAISE WARNING '%', s; END \$\$;"
	done
}

instructions() {
	run "rm -rf '$dir/data' && cp -a '$dir/template' '$dir/data'"
	run "valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		'$bindir/postgres' --single -D '$dir/data' postgres < '$1' >'$dir/out' 2>'$dir/err'"
	if grep -q ERROR "$dir/err" "$dir/out"; then
		grep ERROR "$dir/err" "$dir/out" >&2
		exit 1
	fi
	grep -oP 'Collected : \K[0-9]+' "$dir/err"
}

# Instructions per measured statement: $1 writes the set-up, $2 N writes
# N measured statements
per_statement() {
	local setup=$1 body=$2 n=$3 m=$4 a b
	{ prologue; cat "$dir/prepares.sql"; $setup; $body "$n"; } > "$dir/in.sql"
	a=$(instructions "$dir/in.sql")
	{ prologue; cat "$dir/prepares.sql"; $setup; $body "$m"; } > "$dir/in.sql"
	b=$(instructions "$dir/in.sql")
	echo $(( (a - b) / (n - m) ))
}

# The PREPARE statements of the plain INSERTs, one line each
{ prologue; plain_prepares; } > "$dir/in.sql"
run "'$bindir/postgres' --single -D '$dir/data' postgres < '$dir/in.sql'" 2>&1 \
	| grep -oP 'WARNING:  \KPREPARE .*' > "$dir/prepares.sql"
[ "$(wc -l < "$dir/prepares.sql")" = 3 ] || { echo "no PREPARE lines" >&2; exit 1; }

nothing() { :; }
clicks() {
	local i
	for i in $(seq 1 "$1"); do echo "EXECUTE click('aff-$((i % 20))', 'v-$i');"; done
}
clicks_simple() {
	local i
	for i in $(seq 1 "$1"); do
		echo "SELECT FROM attribution.track_click('aff-$((i % 20))', visitor_id => 'v-$i');"
	done
}
# The visitors' clicks the conversions are attributed to, in one
# statement, then analyzed, as autovacuum would have done after so many
# inserts on a server (the single-user backend never does): without
# statistics the planner takes the visitor lookup for as selective on the
# primary key (advertiser_id, click_id) as on clicks_visitor_idx, and
# every conversion scanned all the advertiser's clicks.
conversion_setup() {
	echo "INSERT INTO attribution.clicks (affiliate_id, visitor_id) SELECT 'aff-' || i % 20, 'v-' || i FROM pg_catalog.generate_series(1, $many) i;"
	echo "ANALYZE attribution.clicks;"
}
conversions() {
	local i
	for i in $(seq 1 "$1"); do echo "EXECUTE conversion('order-$i', 1000, 'v-$i');"; done
}
conversions_simple() {
	local i
	for i in $(seq 1 "$1"); do
		echo "SELECT FROM attribution.track_conversion('order-$i', 1000, visitor_id => 'v-$i');"
	done
}

# The rows the commands write, as EXECUTEs of the plain INSERTs, row then
# receipt: captured from one run of $many clicks and conversions.
capture() {
	local t stmt filter
	prologue
	cat "$dir/prepares.sql"
	clicks "$many"
	conversions "$many"
	for t in clicks:clicks:true conversions:conversions:true \
			 receipts:click_receipts:"aggregate_type = 'click'" \
			 receipts:conversion_receipts:"aggregate_type = 'conversion'"; do
		IFS=: read -r table name filter <<< "$t"
		case $table in
			clicks) order=click_id::text ;;
			conversions) order=order_id ;;
			receipts) order=aggregate_id ;;
		esac
		echo "CREATE TABLE bench.cols_$name AS SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) AS cols, string_agg('%L', ', ' ORDER BY attnum) AS fmt FROM pg_attribute WHERE attrelid = 'attribution.$table'::regclass AND attnum > 0 AND NOT attisdropped;"
		echo "DO \$\$ DECLARE c record; BEGIN SELECT * INTO c FROM bench.cols_$name; EXECUTE format('COPY (SELECT format(%L, %s) FROM attribution.$table WHERE %s ORDER BY %s) TO %L WITH (FORMAT csv, DELIMITER E''\\x02'', QUOTE E''\\x01'')', 'EXECUTE plain_$table(' || c.fmt || ');', c.cols, \$f\$$filter\$f\$, '$order', '$dir/$name.sql'); END \$\$;"
	done
}
capture > "$dir/in.sql"
run "'$bindir/postgres' --single -D '$dir/data' postgres < '$dir/in.sql' >'$dir/out' 2>&1"
if grep -q ERROR "$dir/out"; then grep ERROR "$dir/out" >&2; exit 1; fi
# Row and receipt on one line: one query string, so one transaction, as
# in the command
paste -d ' ' "$dir/clicks.sql" "$dir/click_receipts.sql" > "$dir/click_floor.sql"
paste -d ' ' "$dir/conversions.sql" "$dir/conversion_receipts.sql" > "$dir/conversion_floor.sql"

click_floor() { head -n "$1" "$dir/click_floor.sql"; }
conversion_floor() { head -n "$1" "$dir/conversion_floor.sql"; }

# Bulk: the same statement, N clicks at a time; the floor inserts the rows
# and receipts that a first such statement wrote, from copies made in the
# set-up (which both runs share, so the copies cancel out), in one
# transaction.
bulk() {
	echo "INSERT INTO attribution.clicks (affiliate_id, visitor_id) SELECT 'aff-' || i % 20, 'v-' || i FROM pg_catalog.generate_series(1, $1) i;"
}
bulk_setup() {
	bulk "$bulk_many"
	echo "CREATE TABLE bench.stage_clicks AS SELECT row_number() OVER (ORDER BY click_id) AS n, * FROM attribution.clicks;"
	echo "CREATE TABLE bench.stage_receipts AS SELECT s.n, r.* FROM attribution.receipts r JOIN bench.stage_clicks s ON r.aggregate_id = s.click_id::text WHERE r.aggregate_type = 'click';"
}
bulk_floor() {
	echo -n "INSERT INTO bench.clicks SELECT advertiser_id, click_id, affiliate_id, offer_id, campaign_id, visitor_id, ip, user_agent, referrer, landing_url, clicked_at, window_ends_at, trace_id, span_id, parent_span_id, sampled, tracestate, recorded_at FROM bench.stage_clicks WHERE n <= $1; "
	echo "INSERT INTO bench.receipts SELECT advertiser_id, receipt_id, \"timestamp\", sequence, correlation_id, causation_id, aggregate_id, aggregate_type, payload, payload_hash, signature, trace_id, span_id, prev_hash, receipt_hash, key_id FROM bench.stage_receipts WHERE n <= $1;"
}
# The bulk figures are per click, so divide the per-statement difference
bulk_per_click() {
	local setup=$1 body=$2 a b
	{ prologue; cat "$dir/prepares.sql"; $setup; $body "$bulk_many"; } > "$dir/in.sql"
	a=$(instructions "$dir/in.sql")
	{ prologue; cat "$dir/prepares.sql"; $setup; $body "$bulk_few"; } > "$dir/in.sql"
	b=$(instructions "$dir/in.sql")
	echo $(( (a - b) / (bulk_many - bulk_few) ))
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
}

# Telemetry's share is a few per cent: four places
ratio4() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4fx", a / b }'
}

click=$(per_statement nothing clicks "$many" "$few")
telemetry=off
click_off=$(per_statement nothing clicks "$many" "$few")
telemetry=on
click_plain=$(per_statement nothing click_floor "$many" "$few")
if [ "${CLICK_ONLY:-0}" = 1 ]; then
	echo "instructions per statement (callgrind; $many - $few statements)"
	printf '%-44s %10s %10s %7s\n' measured command floor ratio
	printf '%-44s %10d %10d %7s\n' "track_click prepared / plain INSERTs" "$click" "$click_plain" "$(ratio "$click" "$click_plain")"
	printf '%-44s %10d %10d %7s\n' "track_click prepared, telemetry on / off" "$click" "$click_off" "$(ratio4 "$click" "$click_off")"
	echo "command: CLICK_ONLY=1 bash test/bench/command_callgrind.sh (MANY=$many FEW=$few)"
	exit 0
fi
click_simple=$(per_statement nothing clicks_simple "$many" "$few")
conv=$(per_statement conversion_setup conversions "$many" "$few")
conv_plain=$(per_statement nothing conversion_floor "$many" "$few")
conv_simple=$(per_statement conversion_setup conversions_simple "$many" "$few")
bulk_trig=$(bulk_per_click nothing bulk)
bulk_plain=$(bulk_per_click bulk_setup bulk_floor)

echo "instructions per statement (callgrind, telemetry on; $many - $few statements, bulk $bulk_many - $bulk_few clicks)"
printf '%-44s %10s %10s %7s\n' measured command floor ratio
printf '%-44s %10d %10d %7s\n' "track_click prepared / plain INSERTs" "$click" "$click_plain" "$(ratio "$click" "$click_plain")"
printf '%-44s %10d %10d %7s\n' "track_click prepared, telemetry on / off" "$click" "$click_off" "$(ratio4 "$click" "$click_off")"
printf '%-44s %10d %10d %7s\n' "track_conversion prepared / plain INSERTs" "$conv" "$conv_plain" "$(ratio "$conv" "$conv_plain")"
printf '%-44s %10d %10d %7s\n' "track_click simple / prepared" "$click_simple" "$click" "$(ratio "$click_simple" "$click")"
printf '%-44s %10d %10d %7s\n' "track_conversion simple / prepared" "$conv_simple" "$conv" "$(ratio "$conv_simple" "$conv")"
printf '%-44s %10d %10d %7s\n' "bulk INSERT per click: triggers / plain" "$bulk_trig" "$bulk_plain" "$(ratio "$bulk_trig" "$bulk_plain")"
echo "command: bash test/bench/command_callgrind.sh (MANY=$many FEW=$few BULK_MANY=$bulk_many BULK_FEW=$bulk_few)"
