#!/bin/bash
# Benchmark: integration lag of the receipt logs at the highest command
# rate this machine reaches.  pgbench runs attribution.track_click
# (prepared, CLIENTS clients, SECONDS seconds, 20 advertisers) against a
# private server whose worker integrates every LOG_BATCH_DELAY while
# receipts come and signs a checkpoint per grown log every LOG_INTERVAL
# (defaults: the settings' defaults, 200ms and 1s); meanwhile a sampler
# reads attribution.log_status every 100 ms.
# Reported:
#   tps                 the command rate pgbench reached
#   pending age         oldest_pending_age over all advertisers, per sample
#                       (the age of the oldest committed receipt not yet in
#                       a committed log): median and maximum
#   integrated - written  log_entries.integrated_at - the receipt's
#                       timestamp (the integrating transaction's start,
#                       so a lower bound), median / p99 / max
#   behind at the end   receipts still queued when pgbench stopped, and
#                       how long until the queue was empty
# synchronous_commit is off so the CPU cost, not the WAL flush, bounds
# the rate.  Needs the extension installed (make install); run as root or
# postgres.
set -euo pipefail

SECONDS_RUN=${SECONDS_RUN:-20}
CLIENTS=${CLIENTS:-4}
LOG_INTERVAL=${LOG_INTERVAL:-1s}
LOG_BATCH_DELAY=${LOG_BATCH_DELAY:-200ms}
bin=$(pg_config --bindir)
tmp=$(mktemp -d /tmp/fp_loglag.XXXXXX)

as_pg() {
	if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$tmp"
trap 'as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

as_pg "$bin/initdb -D $tmp/data -A trust" >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
shared_preload_libraries = 'fp_attribution'
listen_addresses = ''
unix_socket_directories = '$tmp'
synchronous_commit = off
fp_attribution.signing_key_file = 'signing.pem'
fp_attribution.log_interval = '$LOG_INTERVAL'
fp_attribution.log_batch_delay = '$LOG_BATCH_DELAY'
fp_attribution.telemetry = off
CONF
as_pg "cd $tmp/data && openssl genpkey -algorithm ed25519 -out signing.pem 2>/dev/null && chmod 600 signing.pem"
as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -w start" >/dev/null
psql="$bin/psql -X -q -At -v ON_ERROR_STOP=1 -h $tmp -d postgres"
as_pg "$psql -c 'CREATE EXTENSION fp_attribution'"

cat >"$tmp/click.sql" <<'SQL'
\set adv random(1, 20)
\set aid random(1, 1000)
SELECT count(*) FROM attribution.track_click('aff-' || :aid, advertiser_id => 'adv-' || :adv);
SQL
chmod 644 "$tmp/click.sql"

# sampler: the age of the oldest pending receipt, in ms, every 100 ms
as_pg "while :; do $psql -c \"SELECT coalesce(extract(epoch FROM max(oldest_pending_age)) * 1000, 0)::int FROM attribution.log_status\"; sleep 0.1; done" >"$tmp/samples" 2>/dev/null &
sampler=$!
cmd="$bin/pgbench -n -M prepared -h $tmp -c $CLIENTS -j $CLIENTS -T $SECONDS_RUN -f $tmp/click.sql postgres"
echo "command: $cmd  (fp_attribution.log_interval = $LOG_INTERVAL, log_batch_delay = $LOG_BATCH_DELAY)"
tps=$(as_pg "$cmd" | grep -oP 'tps = \K[0-9.]+' | head -1)
stop=$(date +%s.%N)
pending=$(as_pg "$psql -c 'SELECT count(*) FROM attribution.log_queue'")
while [ "$(as_pg "$psql -c 'SELECT count(*) FROM attribution.log_queue'")" != 0 ]; do sleep 0.05; done
drained=$(awk -v a="$stop" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
kill "$sampler"; wait "$sampler" 2>/dev/null || true

echo "tps: $tps"
sort -n "$tmp/samples" | awk '{ v[NR] = $1 } END { printf "pending age (%d samples): median %d ms, max %d ms\n", NR, v[int((NR + 1) / 2)], v[NR] }'
as_pg "$psql" <<'SQL'
SELECT format('integrated - written (%s receipts): median %s ms, p99 %s ms, max %s ms',
		count(*),
		round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)),
		round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)), round(max(lag)))
  FROM (SELECT extract(epoch FROM e.integrated_at - r."timestamp") * 1000 AS lag
		  FROM attribution.log_entries e JOIN attribution.receipts r USING (advertiser_id, receipt_id)) s;
SELECT format('logs: %s, entries: %s, checkpoints: %s; verify_all ok: %s',
		(SELECT count(DISTINCT advertiser_id) FROM attribution.log_entries),
		(SELECT count(*) FROM attribution.log_entries),
		(SELECT count(*) FROM attribution.log_checkpoints),
		(SELECT ok FROM attribution.verify_all()));
SQL
echo "behind at the end: $pending receipts queued, queue empty after $drained s"
echo "load average (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
