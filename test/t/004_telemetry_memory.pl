# Pending telemetry is bounded in bytes: a transaction writing a million
# rows keeps at most fp_attribution.max_pending_telemetry of records (plus
# small fixed overhead), however large the rings are, counts the rest as
# dropped and keeps its metrics exact.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Rings large enough that their caps (the only per-transaction bound
# before fp_attribution.max_pending_telemetry) would allow ~190 MB
my $node = PostgreSQL::Test::Cluster->new('telemetry_memory');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.max_spans = 16384
fp_attribution.max_logs = 16384
fp_attribution.max_pending_telemetry = '2MB'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION fp_attribution');

# Receipt rows written directly are the cheapest rows that record
# telemetry (an event span and a log record each): a million of them in one
# INSERT, memory measured before COMMIT
# the bound, plus at most one block of the memory context (1 MB)
my $ceiling = 3.5 * 1024 * 1024;
my ($inserted, $bytes) = split /\n/, $node->safe_psql('postgres', q{
	BEGIN;
	WITH w AS (
		INSERT INTO attribution.receipts (receipt_id, "timestamp", sequence,
			correlation_id, aggregate_id, aggregate_type, payload, payload_hash,
			trace_id, span_id, prev_hash, receipt_hash)
		SELECT gen_random_uuid(), now(), i, 'memory', 'bulk', 'memory_test', '{}',
			   '\x00', '0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331',
			   '\x00', '\x00'
		  FROM generate_series(1, 1000000) i
		RETURNING 1)
	SELECT count(*) FROM w;
	SELECT sum(total_bytes) FROM pg_backend_memory_contexts
	 WHERE name = 'fp_attribution telemetry';
	COMMIT;});
is($inserted, '1000000', 'a million receipt rows in one INSERT');
cmp_ok($bytes, '<=', $ceiling,
	'pending telemetry within max_pending_telemetry plus overhead');

my ($spans, $spans_dropped, $logs, $logs_dropped) = split /\|/,
  $node->safe_psql('postgres', q{
	SELECT spans_written, spans_dropped, logs_written, logs_dropped
	  FROM attribution.telemetry_status});
cmp_ok($spans, '<', 1000, 'only the spans that fit in 2 MB handed over');
cmp_ok($spans, '>', 100, 'and those that fit are');
is($spans + $spans_dropped, 1000000, 'every other span counted as dropped');
is($logs + $logs_dropped, 1000000, 'every log record written or counted as dropped');
is($node->safe_psql('postgres', q{
	SELECT value FROM attribution.metrics WHERE name = 'receipts.total'}),
	'1000000', 'receipts.total exact');

# Commands: each row of a direct INSERT into clicks is one command, with
# its span and four log records reserved when it starts
$node->safe_psql('postgres', 'SELECT attribution.reset_telemetry()');
$bytes = $node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO attribution.clicks (affiliate_id)
	SELECT 'memory-' || (i % 7) FROM generate_series(1, 20000) i;
	SELECT sum(total_bytes) FROM pg_backend_memory_contexts
	 WHERE name = 'fp_attribution telemetry';
	COMMIT;});
cmp_ok($bytes, '<=', $ceiling, 'a 20000-command INSERT within the bound too');
is($node->safe_psql('postgres', q{
	SELECT string_agg(name || '=' || value, ',' ORDER BY name)
	  FROM attribution.metrics
	 WHERE name IN ('affiliate.clicks.total', 'commands.total', 'receipts.total')
	   AND value <> 0}),
	'affiliate.clicks.total=20000,commands.total=20000,receipts.total=20000',
	'metrics of the commands exact');

$node->stop;
done_testing();
