# Per-signal exporter settings, as the OpenTelemetry specification ranks
# them: OTEL_EXPORTER_OTLP_<SIGNAL>_{ENDPOINT,HEADERS,PROTOCOL,COMPRESSION,
# TIMEOUT} in the postmaster's environment become the defaults of
# fp_attribution.otlp_<signal>_*, each winning over its general variable
# for its own signal only; a per-signal endpoint is used as given while
# the general one gets /v1/<signal>; per-signal headers replace the
# general ones; a bad per-signal variable is ignored with a warning.  Then
# postgresql.conf over the environment at reload: an emptied per-signal
# protocol falls back to the general one, and a per-signal timeout cuts
# one signal's hanging request while the general (ten minutes) holds the
# other's.  The collector is test/t/refusing_receiver.js on 127.0.0.1,
# which lists what each request carried.
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

my $script = dirname(__FILE__) . '/refusing_receiver.js';
my ($out, $err) = ('', '');
my $receiver = IPC::Run::start([ 'node', $script, 0 ], '>', \$out, '2>', \$err);
my $t0 = time;
$receiver->pump_nb while $out !~ /ready \d+/ && time - $t0 < 10;
like($out, qr/ready \d+/, 'receiver listening') or BAIL_OUT("receiver: $err");
my ($port) = $out =~ /ready (\d+)/;
my $http = HTTP::Tiny->new;

# The first request the receiver got on a path: content type, encoding
# and x-signal header, or undef
sub request_on
{
	my ($path) = @_;
	my $res = $http->get("http://127.0.0.1:$port/requests");
	die 'receiver control failed' unless $res->{success};
	my ($r) = grep { $_->{path} eq $path } @{ decode_json($res->{content}) };
	return $r;
}

sub wait_request
{
	my ($path) = @_;
	my $deadline = time + 30;
	while (time < $deadline)
	{
		my $r = request_on($path);
		return $r if $r;
		select(undef, undef, undef, 0.1);
	}
	return undef;
}

my $node = PostgreSQL::Test::Cluster->new('signal_settings');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.otlp_metric_interval = 200
fp_attribution.otlp_schedule_delay = 200
fp_attribution.sampling_ratio = 1
});
my $offset = -s $node->logfile;
{
	local $ENV{OTEL_EXPORTER_OTLP_ENDPOINT} = "http://127.0.0.1:$port/base";
	local $ENV{OTEL_EXPORTER_OTLP_HEADERS} = 'x-signal=general';
	local $ENV{OTEL_EXPORTER_OTLP_TRACES_HEADERS} = 'x-signal=traces%20own';
	local $ENV{OTEL_EXPORTER_OTLP_TRACES_PROTOCOL} = 'http/json';
	local $ENV{OTEL_EXPORTER_OTLP_METRICS_ENDPOINT} = "http://127.0.0.1:$port/custom/metrics";
	local $ENV{OTEL_EXPORTER_OTLP_METRICS_PROTOCOL} = 'http/xml';
	local $ENV{OTEL_EXPORTER_OTLP_LOGS_COMPRESSION} = 'gzip';
	local $ENV{OTEL_EXPORTER_OTLP_LOGS_TIMEOUT} = '1234';
	$node->start;
}
$node->safe_psql('postgres', 'CREATE EXTENSION fp_attribution');

is($node->safe_psql('postgres', q{
SELECT string_agg(name || '=' || setting, ' ' ORDER BY name)
  FROM pg_settings
 WHERE name ~ '^fp_attribution\.otlp_(traces|metrics|logs)_(headers|protocol|compression|timeout|endpoint)$'
   AND setting NOT IN ('', '0')}),
	"fp_attribution.otlp_logs_compression=gzip fp_attribution.otlp_logs_timeout=1234 "
	. "fp_attribution.otlp_metrics_endpoint=http://127.0.0.1:$port/custom/metrics "
	. "fp_attribution.otlp_traces_headers=x-signal=traces%20own fp_attribution.otlp_traces_protocol=http/json",
	'each per-signal variable is its setting\'s default');
like(slurp_file($node->logfile, $offset),
	qr{WARNING:  ignoring environment variable OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="http/xml"},
	'a bad per-signal variable is ignored with a warning');

$node->safe_psql('postgres', q{SELECT attribution.track_click('aff-signals')});
my $traces = wait_request('/base/v1/traces');
my $metrics = wait_request('/custom/metrics');
my $logs = wait_request('/base/v1/logs');
ok($traces && $metrics && $logs,
	'the general endpoint gets /v1/<signal>, the per-signal one is used as given')
  or diag($http->get("http://127.0.0.1:$port/requests")->{content});
is_deeply([ map { $_ && "$_->{contentType} '$_->{contentEncoding}' $_->{signal}" } $traces, $metrics, $logs ],
	[
		"application/json '' traces own",
		"application/x-protobuf '' general",
		"application/x-protobuf 'gzip' general"
	],
	'traces in JSON with their own headers, metrics in protobuf (the bad variable ignored), logs gzipped');

# postgresql.conf over the environment; a per-signal timeout cuts only its
# signal's requests
$node->append_conf('postgresql.conf', qq{
fp_attribution.otlp_timeout = '10min'
fp_attribution.otlp_traces_protocol = ''
fp_attribution.otlp_traces_endpoint = 'http://127.0.0.1:$port/hang/traces'
fp_attribution.otlp_logs_endpoint = 'http://127.0.0.1:$port/hang/logs'
fp_attribution.otlp_logs_timeout = 300
});
$node->reload;
$node->poll_query_until('postgres',
	"SELECT current_setting('fp_attribution.otlp_logs_timeout') = '300ms'")
  or die 'reload not seen';
$node->safe_psql('postgres', q{SELECT attribution.track_click('aff-signals-2')});
ok($node->poll_query_until('postgres', q{
SELECT last_error LIKE '%/hang/logs: Timeout was reached'
  FROM attribution.exporter_status WHERE signal = 'logs'}),
	'the logs request timed out after its own 300 ms');
is($node->safe_psql('postgres', q{
SELECT failed + retried || ' ' || (last_error IS NULL)
  FROM attribution.exporter_status WHERE signal = 'traces'}),
	'0 true', 'while the traces request waits for the general ten minutes');
is(wait_request('/hang/traces')->{contentType}, 'application/x-protobuf',
	'an empty per-signal protocol in postgresql.conf falls back to the general one');

$node->stop('immediate');
$receiver->kill_kill;
done_testing();
