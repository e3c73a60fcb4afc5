# Telemetry buffers with tiny capacities: concurrent sessions fill them,
# the oldest records are overwritten and counted as dropped, nothing blocks
# or fails, and metrics stay exact; one transaction collects no more than
# the buffers hold.  Also: JSON log lines in the server log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('telemetry_buffers');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.max_spans = 16
fp_attribution.max_logs = 16
fp_attribution.max_affiliate_series = 2
# the exporter must not copy records during the test (a copied record is not
# counted as dropped when overwritten): no scheduled fetch, and no full batch
# (it fetches at once when otlp_batch_size records wait)
fp_attribution.otlp_schedule_delay = '1h'
fp_attribution.otlp_batch_size = 65536
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION fp_attribution');

# What one click records, measured on one click first: the command span,
# its DB-operation spans and event spans; started, tracked, succeeded, ...
$node->safe_psql('postgres', q{SELECT count(*) FROM attribution.track_click('aff-probe')});
my ($per_click_spans, $per_click_logs) = split /\|/, $node->safe_psql('postgres',
	'SELECT spans_written, logs_written FROM attribution.telemetry_status');
$node->safe_psql('postgres', 'SELECT attribution.reset_telemetry()');
# clicks are append-only: the reset bypasses the triggers
$node->safe_psql('postgres',
	'SET session_replication_role = replica; DELETE FROM attribution.clicks');
cmp_ok($per_click_spans, '>=', 3, 'a click records at least three spans');

# Four sessions, 25 clicks each from 5 affiliates, at the same time
my @sessions;
for my $s (1 .. 4)
{
	my $sql = join('',
		map { "SELECT count(*) FROM attribution.track_click('aff-" . ($_ % 5) . "');\n" }
		  1 .. 25);
	push @sessions, $node->background_psql('postgres');
	$sessions[-1]->query_until(qr/^/, $sql);
}
$_->quit for @sessions;

my $clicks = $node->safe_psql('postgres', 'SELECT count(*) FROM attribution.clicks');
is($clicks, '100', 'every click committed');

my ($spans_cap, $spans_used, $spans_written, $spans_dropped,
	$logs_cap, $logs_used, $logs_written, $logs_dropped) = split /\|/,
  $node->safe_psql('postgres', q{
	SELECT spans_capacity, spans_used, spans_written, spans_dropped,
		   logs_capacity, logs_used, logs_written, logs_dropped
	  FROM attribution.telemetry_status});
is($spans_cap, 16, 'span buffer sized by fp_attribution.max_spans');
is($spans_used, 16, 'span buffer full');
is($spans_written, 100 * $per_click_spans, 'every span was written');
is($spans_dropped, 100 * $per_click_spans - 16, 'overwritten spans counted as dropped');
is($logs_used, 16, 'log buffer full');
is($logs_written, 100 * $per_click_logs, 'every log record was written');
is($logs_dropped, 100 * $per_click_logs - 16, 'overwritten log records counted as dropped');
is($node->safe_psql('postgres', 'SELECT count(*) FROM attribution.spans'),
	'16', 'the view shows the newest spans');

# metrics are exact whatever the buffers did; 2 series + overflow
my $series = $node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE attributes ? 'affiliate.id'),
		   sum(value) FILTER (WHERE attributes @> '{"otel.metric.overflow": true}'),
		   sum(value)
	  FROM attribution.metrics WHERE name = 'affiliate.clicks.by_id'});
is($series, '2|60|100', 'two affiliate series, the other 60 clicks in the overflow series');
is($node->safe_psql('postgres', q{
	SELECT value FROM attribution.metrics WHERE name = 'affiliate.clicks.total'}),
	'100', 'clicks.total exact');

# One transaction writing far more rows than the buffers hold: it keeps at
# most max_spans spans and max_logs log records (the rest are dropped at
# once, not collected), its memory stays small, and its metrics are exact.
$node->safe_psql('postgres', 'SELECT attribution.reset_telemetry()');
my $bulk = $node->safe_psql('postgres', q{
	BEGIN;
	INSERT INTO attribution.clicks (click_id, affiliate_id)
	SELECT gen_random_uuid(), 'aff-bulk-' || (i % 3) FROM generate_series(1, 20000) i;
	SELECT sum(total_bytes) < 8 * 1024 * 1024
	  FROM pg_backend_memory_contexts
	 WHERE name = 'fp_attribution telemetry';
	COMMIT;});
is($bulk, 't', 'a 20000-row INSERT keeps little telemetry memory');
my ($bulk_spans, $bulk_spans_dropped, $bulk_logs, $bulk_logs_dropped) = split /\|/,
  $node->safe_psql('postgres', q{
	SELECT spans_written, spans_dropped, logs_written, logs_dropped
	  FROM attribution.telemetry_status});
cmp_ok($bulk_spans, '<=', 16, 'at most max_spans spans handed over');
cmp_ok($bulk_logs, '<=', 16, 'at most max_logs log records handed over');
cmp_ok($bulk_spans + $bulk_spans_dropped, '>=', 2 * 20000,
	'the spans that did not fit counted as dropped');
cmp_ok($bulk_logs + $bulk_logs_dropped, '>=', 3 * 20000,
	'the log records that did not fit counted as dropped');
is($node->safe_psql('postgres', q{
	SELECT string_agg(name || '=' || value, ',' ORDER BY name, value)
	  FROM attribution.metrics
	 WHERE name IN ('affiliate.clicks.total', 'commands.total')
	   AND value <> 0}),
	'affiliate.clicks.total=20000,commands.total=20000', 'metrics of the bulk INSERT exact');

# JSON lines in the server log
my $offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	SET fp_attribution.log_json = on;
	SELECT count(*) FROM attribution.track_click('aff-json', ip => '198.51.100.9');});
ok($node->wait_for_log(qr/"event_name": "fp\.click\.tracked".*"trace_id": "[0-9a-f]{32}"/, $offset),
	'click tracked written as a JSON line with its trace id');
# (the statement itself is logged by the test server's log_statement = all)
my @json = grep { /"event_name"/ } split /\n/, slurp_file($node->logfile, $offset);
is(scalar(@json), $per_click_logs, 'one JSON line per log record');
is(scalar(grep { /198\.51\.100\.9/ } @json), 0, 'no raw client IP in the JSON lines');

$node->stop;
done_testing();
