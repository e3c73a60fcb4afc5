# The exporter's accounting is exact: for spans and log records,
# sent + rejected + dropped in attribution.exporter_status equals the
# records written (attribution.telemetry_status) once the exporter has
# caught up, even when the worker dies with a batch in hand (here by
# pg_cancel_backend while the batch waits for a retry: an ERROR, which
# ends a background worker).  A Retry-After of an hour is cut to
# RETRY_AFTER_MAX_MS (30 s).  The collector is test/t/refusing_receiver.js
# on 127.0.0.1, which answers 503 or 429 with "Retry-After: 3600" on demand.
use strict;
use warnings;
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# on a free port (FP_TEST_RECEIVER_PORT to choose one), so that test runs
# side by side never collide
my $script = dirname(__FILE__) . '/refusing_receiver.js';
my ($out, $err) = ('', '');
my $receiver = IPC::Run::start([ 'node', $script, $ENV{FP_TEST_RECEIVER_PORT} // 0 ],
	'>', \$out, '2>', \$err);
my $t0 = time;
$receiver->pump_nb while $out !~ /ready \d+/ && time - $t0 < 10;
like($out, qr/ready \d+/, 'receiver listening') or BAIL_OUT("receiver: $err");
my ($port) = $out =~ /ready (\d+)/;

my $http = HTTP::Tiny->new;
sub refuse
{
	my ($status) = @_;
	$http->post("http://127.0.0.1:$port/refuse?status=$status&n=1")->{success}
	  or die 'receiver control failed';
}

my $node = PostgreSQL::Test::Cluster->new('accounting');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'fp_attribution'
fp_attribution.otlp_endpoint = 'http://127.0.0.1:$port'
fp_attribution.otlp_schedule_delay = 200
fp_attribution.sampling_ratio = 1
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION fp_attribution');

my $exporter = "backend_type = 'fp_attribution exporter'";
my $balanced = q{
SELECT bool_and(e.sent + e.rejected + e.dropped =
				CASE e.signal WHEN 'traces' THEN t.spans_written ELSE t.logs_written END
				AND e.sent > 0)
  FROM attribution.exporter_status e, attribution.telemetry_status t
 WHERE e.signal IN ('traces', 'logs')};
my $retried = q{
SELECT string_agg(retried::text, ' ' ORDER BY signal)
  FROM attribution.exporter_status WHERE signal IN ('traces', 'logs')};
sub clicks
{
	$node->safe_psql('postgres', qq{
SELECT count(attribution.track_click('aff-' || i, ip => '203.0.113.7'))
  FROM generate_series(1, $_[0]) i});
}

# The first batch of each signal is refused; while it waits for its retry,
# the worker is cancelled and dies.  Its successor sends the batch again.
refuse(503);
clicks(40);
ok($node->poll_query_until('postgres', $retried, '1 1'),
	'the first batches were refused and wait for a retry');
my $pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE $exporter");
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE $exporter AND pid <> $pid"),
	'the cancelled worker was restarted');
ok($node->poll_query_until('postgres', $balanced),
	'sent + rejected + dropped = written after the worker died mid-batch');
is($node->safe_psql('postgres', q{
SELECT string_agg(signal || ' ' || dropped, ', ' ORDER BY signal)
  FROM attribution.exporter_status WHERE signal IN ('traces', 'logs')}),
	'logs 0, traces 0', 'the batch in hand was sent, not dropped');

# A refusal with "Retry-After: 3600" holds a signal back for 30 s only
refuse(429);
clicks(10);
ok($node->poll_query_until('postgres', $retried, '2 2'),
	'the next batches were refused with 429');
my $start = time;
ok($node->poll_query_until('postgres', $balanced),
	'all records accounted for after the capped Retry-After');
my $waited = time - $start;
ok($waited < 45, "Retry-After: 3600 waited at most about 30 s (waited ${waited}s)");
ok($waited > 20, 'Retry-After was honoured up to the cap');
is($node->safe_psql('postgres', q{
SELECT string_agg(signal || ' ' || dropped, ', ' ORDER BY signal)
  FROM attribution.exporter_status WHERE signal IN ('traces', 'logs')}),
	'logs 0, traces 0', 'nothing dropped');

$node->stop('fast');
$receiver->kill_kill;
done_testing();
