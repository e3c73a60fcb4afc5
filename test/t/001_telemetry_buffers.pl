# Telemetry buffers with tiny capacities: concurrent sessions fill them,
# the oldest records are overwritten and counted as dropped, nothing blocks
# or fails, and metrics stay exact.  Also: JSON log lines in the server log.
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
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION fp_attribution');

# What one click records, measured on one click first: the command span,
# its DB-operation spans and event spans; started, tracked, succeeded, ...
$node->safe_psql('postgres', q{SELECT count(*) FROM attribution.track_click('aff-probe')});
my ($per_click_spans, $per_click_logs) = split /\|/, $node->safe_psql('postgres',
	'SELECT spans_written, logs_written FROM attribution.telemetry_status');
$node->safe_psql('postgres', 'SELECT attribution.reset_telemetry()');
$node->safe_psql('postgres', 'DELETE FROM attribution.clicks');
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
