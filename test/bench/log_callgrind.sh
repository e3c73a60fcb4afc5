#!/bin/bash
# Receipt logs under callgrind, in a single-user backend (stable where
# wall-clock ratios on a shared machine are not):
#  1. instructions per track_click with the log off and on: "on" adds the
#     integration the worker does (attribution.integrate_log() after every
#     BATCH clicks, default 50, checkpoint signing included), amortized per
#     click; the command itself runs the same code either way (its receipt's
#     INSERT also queues the receipt in attribution.log_queue: compare "off"
#     with the figure of a build before the queue for that share).  Each
#     figure is (550 clicks - 50 clicks) / 500 from empty tables; both
#     runs integrate after their last click too, so one-time costs (loading
#     the key) cancel out whatever BATCH is.
#  2. instructions per attribution.receipt_proof() and per
#     consistency_proof() in logs of 10,000 and 1,000,000 entries (stored
#     subtree hashes generated in SQL; the proofs only read them):
#     (K + 20 calls - 20 calls) / K.
# Under load the worker integrates every fp_attribution.log_batch_delay
# (200 ms) and signs one checkpoint per grown log every
# fp_attribution.log_interval (1 s), so a signature is shared by about
# five integrations: SIGN_EVERY=5 signs only at every fifth integration
# (and the last; integrate_log(sign => false) otherwise), the default 1 at
# every one.  BATCH=550 or more counts one integration and one signature
# per run, which cancel out, so the figure is the per-receipt integration
# alone.  PROOFS=0 skips part 2.
# Run as root or postgres after `make install`; takes several minutes.
set -euo pipefail

BATCH=${BATCH:-50}
SIGN_EVERY=${SIGN_EVERY:-1}
PROOFS=${PROOFS:-1}

dir=$(mktemp -d /tmp/fp_logbench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
bindir=$(pg_config --bindir)

run() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

run "'$bindir/initdb' -D '$dir/data' -A trust >/dev/null"
run "cd '$dir/data' && openssl genpkey -algorithm ed25519 -out signing.pem 2>/dev/null && chmod 600 signing.pem"
cat >> "$dir/data/postgresql.conf" <<CONF
shared_preload_libraries = 'fp_attribution'
fp_attribution.signing_key_file = 'signing.pem'
CONF
single() {						# single FILE: run FILE in a single-user backend
	run "'$bindir/postgres' --single -D '$dir/data' postgres < '$1' >/dev/null 2>'$dir/err'"
	if grep -q ERROR "$dir/err"; then cat "$dir/err" >&2; exit 1; fi
}
echo 'CREATE EXTENSION fp_attribution;' > "$dir/in.sql"
single "$dir/in.sql"

clicks() {						# clicks MODE N
	echo "DROP EXTENSION fp_attribution; CREATE EXTENSION fp_attribution;"
	echo "SET fp_attribution.telemetry = off;"
	for i in $(seq 1 "$2"); do
		echo "SELECT count(*) FROM attribution.track_click('aff-$((i % 20))');"
		if [ "$1" = on ] && { [ $((i % BATCH)) = 0 ] || [ "$i" = "$2" ]; }; then
			if [ $((i / BATCH % SIGN_EVERY)) = 0 ] || [ "$i" = "$2" ]; then
				echo "SELECT attribution.integrate_log();"
			else
				echo "SELECT attribution.integrate_log(sign => false);"
			fi
		fi
	done
}

instructions() {				# instructions FILE
	run "valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		'$bindir/postgres' --single -D '$dir/data' postgres < '$1' >/dev/null 2>'$dir/err'"
	if grep -q ERROR "$dir/err"; then cat "$dir/err" >&2; exit 1; fi
	grep -oP 'Collected : \K[0-9]+' "$dir/err"
}

declare -A per
for mode in off on; do
	clicks $mode 550 > "$dir/many.sql"
	clicks $mode 50 > "$dir/few.sql"
	many=$(instructions "$dir/many.sql")
	few=$(instructions "$dir/few.sql")
	per[$mode]=$(( (many - few) / 500 ))
	echo "log $mode: ${per[$mode]} instructions per track_click"
done
echo "log on / off: $(awk -v a="${per[on]}" -v b="${per[off]}" 'BEGIN { printf "%.4f", a / b }') (throughput ratio $(awk -v a="${per[on]}" -v b="${per[off]}" 'BEGIN { printf "%.4f", b / a }'))"

[ "$PROOFS" = 1 ] || exit 0

# A log of N entries for advertiser 'bench': one real receipt at index
# N - 1 (the last), made-up entries before it, their leaf hashes in tiles
# of 128, every stored subtree hash
# (levels 4, 8 ...: FP_LOG_TILE_HEIGHT), a checkpoint at N
build_log() {					# one statement a line: single-user mode
	echo "DROP EXTENSION fp_attribution; CREATE EXTENSION fp_attribution;"
	echo "SELECT count(*) FROM attribution.track_click('aff-1', advertiser_id => 'bench');"
	echo "INSERT INTO attribution.log_entries (advertiser_id, log_index, receipt_id) SELECT 'bench', i, gen_random_uuid() FROM generate_series(0, $1 - 2) AS i;"
	echo "INSERT INTO attribution.log_entries (advertiser_id, log_index, receipt_id) SELECT 'bench', $1 - 1, receipt_id FROM attribution.receipts;"
	echo "INSERT INTO attribution.log_tiles (advertiser_id, first_index, leaf_hashes) SELECT 'bench', min(i), string_agg(h, ''::bytea ORDER BY i) FROM (SELECT i, sha256(int8send(i)) AS h FROM generate_series(0, $1 - 2) AS i UNION ALL SELECT $1 - 1, sha256('\\x00'::bytea || receipt_hash) FROM attribution.receipts) AS l GROUP BY i / 128;"
	echo "INSERT INTO attribution.log_nodes (advertiser_id, level, node_index, hash) SELECT 'bench', l, i, sha256(int8send(l * 4294967296 + i)) FROM generate_series(4, 20, 4) AS l, generate_series(0, ($1 >> l) - 1) AS i;"
	echo "INSERT INTO attribution.log_checkpoints (advertiser_id, tree_size, root_hash, public_key, note) VALUES ('bench', $1, sha256('root'), sha256('key'), E'bench\\n$1\\nroot\\n\\n');"
}
proofs() {						# proofs N K
	for _ in $(seq 1 "$2"); do
		echo "SELECT length(attribution.receipt_proof(receipt_id)) FROM attribution.receipts WHERE advertiser_id = 'bench';"
		echo "SELECT cardinality(attribution.consistency_proof('bench', $1 / 2 + 1, $1));"
	done
}
for n in 10000 1000000; do
	build_log $n > "$dir/build.sql"
	single "$dir/build.sql"
	proofs $n 220 > "$dir/many.sql"
	proofs $n 20 > "$dir/few.sql"
	many=$(instructions "$dir/many.sql")
	few=$(instructions "$dir/few.sql")
	echo "log of $n entries: $(( (many - few) / 200 )) instructions per receipt_proof + consistency_proof pair"
done
