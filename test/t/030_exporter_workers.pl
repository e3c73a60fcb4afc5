# Two exporter workers (fp_attribution.otlp_workers = 2) share the span and
# log rings: every span written reaches the collector exactly once (its
# span id is received once, and every span id in attribution.spans is
# received), as many log records arrive as were written, the accounting
# balances with nothing dropped, and the traces came over more than one
# connection (both workers sent).  Small batches while four sessions
# write make the workers claim many batches side by side.  The collector
# is test/t/collecting_receiver.js on 127.0.0.1 (OTLP/JSON, so that it
# needs no protobuf decoder).
use strict;
use warnings;
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $script = dirname(__FILE__) . '/collecting_receiver.js';
my ($out, $err) = ('', '');
my $receiver = IPC::Run::start([ 'node', $script, $ENV{FP_TEST_RECEIVER_PORT} // 0 ],
	'>', \$out, '2>', \$err);
my $t0 = time;
$receiver->pump_nb while $out !~ /ready \d+/ && time - $t0 < 10;
like($out, qr/ready \d+/, 'receiver listening') or BAIL_OUT("receiver: $err");
my ($port) = $out =~ /ready (\d+)/;

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'fp_attribution'
fp_attribution.otlp_workers = 2
fp_attribution.otlp_endpoint = 'http://127.0.0.1:$port'
fp_attribution.otlp_protocol = 'http/json'
fp_attribution.otlp_batch_size = 16
fp_attribution.otlp_schedule_delay = 100
fp_attribution.max_spans = 65536
fp_attribution.max_logs = 65536
fp_attribution.sampling_ratio = 1
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION fp_attribution');

my $exporter = "backend_type = 'fp_attribution exporter'";
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM pg_stat_activity WHERE $exporter"),
	'two exporter workers run');

# four sessions write at once, 200 clicks each in transactions of 10
my @sessions = map { $node->background_psql('postgres') } 1 .. 4;
for my $round (1 .. 20)
{
	$_->query_safe(qq{
SELECT count(attribution.track_click('aff-' || i, ip => '203.0.113.7'))
  FROM generate_series(1, 10) i}) for @sessions;
}
$_->quit for @sessions;

# counted (sent + rejected + dropped) against written, per signal
my $counted = q{
SELECT string_agg(e.signal || ' ' || (e.sent + e.rejected + e.dropped) || ' of ' ||
				  CASE e.signal WHEN 'traces' THEN t.spans_written ELSE t.logs_written END,
				  ', ' ORDER BY e.signal)
  FROM attribution.exporter_status e, attribution.telemetry_status t
 WHERE e.signal IN ('traces', 'logs')};
ok($node->poll_query_until('postgres', qq{
SELECT bool_and(e.sent + e.rejected + e.dropped >=
				CASE e.signal WHEN 'traces' THEN t.spans_written ELSE t.logs_written END)
  FROM attribution.exporter_status e, attribution.telemetry_status t
 WHERE e.signal IN ('traces', 'logs')}), 'the workers caught up');
like($node->safe_psql('postgres', $counted), qr/^logs (\d+) of \1, traces (\d+) of \2$/,
	'sent + rejected + dropped = written for spans and logs');
is($node->safe_psql('postgres', q{
SELECT string_agg(signal || ' ' || dropped || ' ' || rejected, ', ' ORDER BY signal)
  FROM attribution.exporter_status WHERE signal IN ('traces', 'logs')}),
	'logs 0 0, traces 0 0', 'nothing dropped or rejected');

my $dump = decode_json(HTTP::Tiny->new->get("http://127.0.0.1:$port/dump")->{content});
my %seen;
$seen{$_}++ for @{ $dump->{spans} };
my @twice = grep { $seen{$_} > 1 } keys %seen;
is(scalar(@twice), 0, 'no span was received twice');
my ($written, $logs_written) = split /\|/, $node->safe_psql('postgres',
	'SELECT spans_written, logs_written FROM attribution.telemetry_status');
cmp_ok($written, '>=', 3000, 'the sessions wrote thousands of spans');
is(scalar(@{ $dump->{spans} }), $written, 'as many spans received as written');
my @missing = grep { !$seen{$_} } split /\n/,
  $node->safe_psql('postgres', 'SELECT span_id FROM attribution.spans');
is(scalar(@missing), 0, 'every span in the ring was received');
is($dump->{logs}, $logs_written, 'as many log records received as written');
cmp_ok($dump->{traceConnections}, '>=', 2, 'traces came from both workers');

$node->stop('fast');
$receiver->kill_kill;
done_testing();
