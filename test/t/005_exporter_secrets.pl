# Secrets of the collector's URL never leave the server's configuration:
# with credentials in the endpoint's userinfo and a token in a per-signal
# endpoint's query string, the failures of a real export (to a closed port
# on 127.0.0.1) reach attribution.exporter_status.last_error and the
# server log with both replaced by "***"; a pg_monitor member reads the
# redacted status.  Also: an OTEL_EXPORTER_OTLP_HEADERS default holding a
# percent-encoded CR LF goes through the setting's check and is ignored.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('secrets');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.otlp_endpoint = 'http://user:s3cret-pw@127.0.0.1:1/base'
fp_attribution.otlp_traces_endpoint = 'http://tr:tr-pw@127.0.0.1:1/t?token=t0ken-abc#frag'
fp_attribution.otlp_metric_interval = 200
fp_attribution.otlp_schedule_delay = 200
});
my $offset = -s $node->logfile;
{
	local $ENV{OTEL_EXPORTER_OTLP_HEADERS} = 'x-token=hdr-s3cret%0d%0aX-Injected:%201';
	$node->start;
}

$node->safe_psql('postgres', q{
CREATE EXTENSION fp_attribution;
CREATE ROLE regress_monitor LOGIN IN ROLE pg_monitor;
GRANT USAGE ON SCHEMA attribution TO regress_monitor;
SELECT attribution.track_click('secrets-aff');
});

ok($node->poll_query_until('postgres',
	"SELECT count(last_error) = 3 FROM attribution.exporter_status"),
	'the exports of all three signals failed');
is($node->safe_psql('postgres',
	"SELECT signal || ' ' || last_error FROM attribution.exporter_status ORDER BY signal",
	connstr => $node->connstr('postgres') . ' user=regress_monitor'),
	"logs http://***\@127.0.0.1:1/base/v1/logs: Couldn't connect to server\n"
	. "metrics http://***\@127.0.0.1:1/base/v1/metrics: Couldn't connect to server\n"
	. "traces http://***\@127.0.0.1:1/t?***: Couldn't connect to server",
	'a pg_monitor member reads last_error, with userinfo and query string redacted');

my $log = slurp_file($node->logfile, $offset);
like($log, qr{LOG:  fp_attribution exporter: will retry metrics: http://\*\*\*\@127\.0\.0\.1:1/base/v1/metrics: },
	'the log names the metrics URL without its credentials');
like($log, qr{LOG:  fp_attribution exporter: will retry traces: http://\*\*\*\@127\.0\.0\.1:1/t\?\*\*\*: },
	'and the traces URL without credentials or query string');
unlike($log, qr{s3cret-pw|tr-pw|t0ken-abc|frag|user:|tr:}, 'no secret of the URLs is logged');

like($log, qr{WARNING:  ignoring environment variable OTEL_EXPORTER_OTLP_HEADERS\n.*DETAIL:  A header name or value holds a control character}s,
	'OTEL_EXPORTER_OTLP_HEADERS with a percent-encoded CR LF is refused by the same check');
unlike($log, qr{hdr-s3cret}, 'without logging its value');
is($node->safe_psql('postgres', "SELECT boot_val FROM pg_settings WHERE name = 'fp_attribution.otlp_headers'"),
	'', 'and the headers default stays empty');

# a bad endpoint in the environment is logged redacted; one in
# postgresql.conf is refused at reload without its value
$node->stop('fast');
$offset = -s $node->logfile;
{
	local $ENV{OTEL_EXPORTER_OTLP_LOGS_ENDPOINT} = 'http://u:env-pw@127.0.0.1:1/a b';
	$node->start;
}
$node->append_conf('postgresql.conf',
	"fp_attribution.otlp_metrics_endpoint = 'http://u:conf-pw\@127.0.0.1:1/a b'\n");
$node->reload;
ok($node->wait_for_log(qr{invalid value for an OTLP endpoint setting}, $offset),
	'a bad endpoint in postgresql.conf is refused at reload');
$log = slurp_file($node->logfile, $offset);
like($log, qr{WARNING:  ignoring environment variable OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="http://\*\*\*\@127\.0\.0\.1:1/a b"},
	'a bad endpoint variable is named with its credentials redacted');
unlike($log, qr{env-pw|conf-pw}, 'neither bad endpoint\'s credentials are logged');

$node->stop('fast');
done_testing();
