#!/bin/bash
# The module exports what PostgreSQL looks up by name and nothing of the
# generated OTLP code: protobuf-c's opentelemetry__* symbols, if exported,
# could bind to (or be bound by) another library loaded into the server
# that embeds the same .proto files.
#
# usage: test/exported_symbols.sh <built fp_attribution.so> <source tree>
# PostgreSQL dlsym()s Pg_magic_func, _PG_init, each SQL-callable function
# and its pg_finfo_ record, and the worker's entry point.
set -uo pipefail
so=$1
src=$2
defined=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort -u)
status=0

leaked=$(grep -E '^(opentelemetry__|protobuf_c_)' <<<"$defined")
if [ -n "$leaked" ]; then
	echo "FAIL: $(wc -l <<<"$leaked") generated protobuf-c symbols exported, e.g.:"
	head -5 <<<"$leaked"
	status=1
fi

needed="Pg_magic_func _PG_init fp_attribution_worker_main"
# the C functions the install script names literally (names it builds with
# || are looked up by CREATE EXTENSION, which every suite runs)
for fn in $(grep -hoP "'MODULE_PATHNAME', *'\K[a-z_0-9]+(?='(?! *\|\|))" "$src"/sql/*.sql | sort -u); do
	needed="$needed $fn pg_finfo_$fn"
done
for sym in $needed; do
	if ! grep -qx "$sym" <<<"$defined"; then
		echo "FAIL: $sym is not exported"
		status=1
	fi
done

[ $status -eq 0 ] && echo "PASS: exported symbols ($(wc -w <<<"$needed") needed ones present, no protobuf-c ones)"
exit $status
