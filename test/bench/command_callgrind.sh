#!/bin/bash
# Instructions per track_click, telemetry off and on, counted by callgrind in
# a single-user backend: stable where wall-clock ratios on a shared machine
# are not.  Each figure is (550 clicks - 50 clicks) / 500, so start-up and
# the first calls' catalog loading cancel out; every run starts from empty
# tables.  Run as root after
# `make install`; takes about five minutes.
set -euo pipefail

dir=$(mktemp -d /tmp/fp_callgrind.XXXXXX)
trap 'rm -rf "$dir"' EXIT
chown postgres: "$dir"
bindir=$(pg_config --bindir)

run() {
	su postgres -s /bin/bash -c "$*"
}

run "'$bindir/initdb' -D '$dir/data' -A trust >/dev/null"
echo "shared_preload_libraries = 'fp_attribution'" >> "$dir/data/postgresql.conf"
run "echo 'CREATE EXTENSION fp_attribution;' | '$bindir/postgres' --single -D '$dir/data' postgres >/dev/null 2>&1"

clicks() {
	echo "DROP EXTENSION fp_attribution; CREATE EXTENSION fp_attribution;"
	echo "SET fp_attribution.telemetry = $1;"
	for i in $(seq 1 "$2"); do
		echo "SELECT count(*) FROM attribution.track_click('aff-$((i % 20))');"
	done
}

instructions() {
	clicks "$1" "$2" > "$dir/in.sql"
	run "valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		'$bindir/postgres' --single -D '$dir/data' postgres < '$dir/in.sql' >/dev/null 2>'$dir/err'"
	grep -q ERROR "$dir/err" && { cat "$dir/err" >&2; exit 1; }
	grep -oP 'Collected : \K[0-9]+' "$dir/err"
}

for mode in off on; do
	many=$(instructions $mode 550)
	few=$(instructions $mode 50)
	echo "telemetry $mode: $(( (many - few) / 500 )) instructions per track_click"
done
