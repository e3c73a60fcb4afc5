#!/bin/bash
# ALTER EXTENSION fp_attribution UPDATE on a cluster distributed at 2.0:
# refused with its own message, and the cluster stays at 2.0 (doc/citus.md,
# "Upgrades").  Replaces the extension, so tests.sh runs it last.
# Run by tests.sh (PG* point at the coordinator).
set -uo pipefail
. "$(dirname "$0")/check_lib.sh"
q -c "DROP EXTENSION fp_attribution CASCADE" -c "CREATE EXTENSION fp_attribution VERSION '2.0'" \
	-c "SET citus.shard_count = 4" -c "SELECT attribution.distribute()" >/dev/null
q -c "SELECT 1 FROM attribution.track_click('aff-upgrade', advertiser_id => 'adv-upgrade')" >/dev/null
check "update of a cluster distributed at 2.0 refused" \
	"ERROR:  0A000: fp_attribution cannot be updated to 2.1 on a Citus cluster distributed at 2.0" \
	"$(psql -XAtq -v VERBOSITY=verbose -c "ALTER EXTENSION fp_attribution UPDATE TO '2.1'" 2>&1 | head -1)"
check "the cluster stays at 2.0, its data intact" "2.0 1" \
	"$(q -c "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'fp_attribution')
			 || ' ' || (SELECT count(*) FROM attribution.clicks WHERE advertiser_id = 'adv-upgrade')")"
exit $status
