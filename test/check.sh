#!/bin/bash
# Run every test of fp_attribution on a fresh Debian 12 machine, as root:
# installs dependencies, builds with warnings as errors, installs, then runs
# pg_regress, pgTAP and isolation suites (make installcheck, each against a
# private preloaded server), the end-to-end tests and the Citus cluster
# suite (which builds Citus with ../shared/citus/build.sh when missing).
#
# The server refuses to run as root, so the tests run as the "postgres" OS
# user in a throw-away copy of the tree; the checkout itself is not touched.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/test/lib.sh"
work=$(stage_tree "$src")
trap 'rm -rf "$work"' EXIT
log="$work/check.log"
cd "$work"

make -s clean
as_postgres "cd '$work' && make -s PG_CFLAGS='-Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare'"
make -s install

status=0
bash "$work/test/exported_symbols.sh" "$work/fp_attribution.so" "$work" 2>&1 | tee "$log" || status=1
bash "$work/test/module_layers.sh" "$work" 2>&1 | tee -a "$log" || status=1
as_postgres "make -C $work installcheck-pgtap" 2>&1 | tee -a "$log" || status=1
as_postgres "make -C $work installcheck-nopreload" 2>&1 | tee -a "$log" || status=1
# regress, isolation and TAP apart: make stops at the first failing suite
as_postgres "make -C $work installcheck SKIP_PGTAP=1 ISOLATION= TAP_TESTS=" 2>&1 | tee -a "$log" || status=1
as_postgres "make -C $work installcheck SKIP_PGTAP=1 REGRESS= TAP_TESTS=" 2>&1 | tee -a "$log" || status=1
as_postgres "make -C $work installcheck SKIP_PGTAP=1 REGRESS= ISOLATION=" 2>&1 | tee -a "$log" || status=1
if [ $status -ne 0 ]; then
	for f in regression.diffs test/*/regression.diffs; do
		[ -s "$f" ] && { echo "=== $f"; cat "$f"; }
	done
fi

# The cluster suite finds ../shared/citus/build.sh beside the checkout,
# not beside the staged copy
export FP_SOURCE_DIR=$src
for t in "$work"/test/e2e/run.sh "$work"/test/otel_client/run.sh "$work"/test/offline_verify/run.sh \
	"$work"/test/dump_restore/run.sh "$work"/test/upgrade/run.sh "$work"/test/jcs_property/run.sh "$work"/test/log_verify/run.sh \
	"$work"/test/log_push/run.sh \
	"$work"/test/citus/run.sh; do
	[ -x "$t" ] || continue
	bash "$t" 2>&1 | tee -a "$log" || status=1
done

passed=$(grep -cE '(\.\.\. ok|^ok [0-9]+ (- )?|^PASS)' "$log" || true)
# a TAP script that dies before its plan shows no "not ok", only prove's
# "Dubious" verdict: count those too
failed=$(grep -cE '(\.\.\. FAILED|^not ok [0-9]+|^FAIL|Dubious, test returned)' "$log" || true)
# a suite that failed without a countable line (a build or setup error)
[ $status -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "$passed passed, $failed failed"
[ $status -eq 0 ] && [ "$failed" -eq 0 ]
