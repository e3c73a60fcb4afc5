# Lifecycle of the OTLP export worker: registration under its own backend
# type and wait event, reload of a PGC_SIGHUP setting, restart after
# pg_terminate_backend, drain on shutdown.  No collector is needed: the
# endpoint points at a closed port on 127.0.0.1 and the worker's own log
# lines show what it did.  Also: the windows gauge only runs the
# extension's own function and gives up on a lock; bad OTEL_* variables in
# the postmaster's environment are ignored.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('exporter');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.otlp_endpoint = 'http://127.0.0.1:1'
fp_attribution.otlp_metric_interval = 200
});
$node->start;

my $exporter = "backend_type = 'fp_attribution exporter'";

ok($node->poll_query_until('postgres',
	"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE $exporter"),
	'worker listed in pg_stat_activity with the Extension wait event');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE $exporter AND datname = 'postgres'"),
	'worker is connected to fp_attribution.otlp_database');

# a reload changes where it sends
my $offset = -s $node->logfile;
$node->safe_psql('postgres',
	"ALTER SYSTEM SET fp_attribution.otlp_endpoint = 'http://127.0.0.1:2'");
$node->reload;
ok($node->wait_for_log(qr{127\.0\.0\.1:2/v1/metrics}, $offset),
	'worker uses the new endpoint after SIGHUP');

# Terminate the worker and wait for the postmaster to start a new one after
# bgw_restart_time; returns the new one's pid.  A new worker takes the
# affiliate.windows.active gauge 200 ms after it starts, then fails to
# send the metrics (logged once at LOG).
sub restart_worker
{
	my $pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE $exporter");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE $exporter AND pid <> $pid")
	  or return undef;
	return $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE $exporter");
}

# Without the extension, a schema named attribution is not looked into:
# the worker is a superuser and anyone with CREATE could have made it.
$node->safe_psql('postgres', q{
CREATE SCHEMA attribution;
CREATE FUNCTION attribution.windows_active() RETURNS bigint LANGUAGE plpgsql
	AS $$BEGIN RAISE LOG 'planted windows_active ran'; RETURN 42; END$$;
});
$offset = -s $node->logfile;
my $pid = restart_worker();
ok($pid, 'worker restarted after pg_terminate_backend');
ok($node->wait_for_log(qr{\[$pid\] LOG:  fp_attribution exporter: will retry metrics}, $offset),
	'restarted worker exported metrics');
unlike(slurp_file($node->logfile, $offset), qr{planted windows_active ran},
	'the gauge ignores an attribution schema that is not the extension\'s');

# A lock on attribution.clicks held by a long transaction makes the gauge
# time out and be skipped; the worker carries on and still stops on SIGTERM.
$node->safe_psql('postgres', q{
DROP SCHEMA attribution CASCADE;
CREATE EXTENSION fp_attribution;
});
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE attribution.clicks IN ACCESS EXCLUSIVE MODE');
$offset = -s $node->logfile;
$pid = restart_worker();
ok($node->wait_for_log(qr{\[$pid\] LOG:  fp_attribution exporter: affiliate\.windows\.active skipped: canceling statement due to lock timeout}, $offset),
	'the gauge gives up waiting for a lock');
ok($node->wait_for_log(qr{\[$pid\] LOG:  fp_attribution exporter: will retry metrics}, $offset),
	'the worker exports the other metrics without the gauge');
$locker->quit;

# shutdown drains with a bounded final flush, then exits
$offset = -s $node->logfile;
$node->stop('fast');
ok($node->wait_for_log(qr{fp_attribution exporter shutting down}, $offset),
	'worker shuts down cleanly');

# OTEL_* variables that do not parse are ignored with a warning instead of
# keeping the server from starting; a headers value, which may hold a
# token, never reaches the log.
$offset = -s $node->logfile;
{
	local $ENV{OTEL_EXPORTER_OTLP_ENDPOINT} = 'collector:4318';
	local $ENV{OTEL_EXPORTER_OTLP_LOGS_ENDPOINT} = 'collector:4318/v1/logs';
	local $ENV{OTEL_EXPORTER_OTLP_HEADERS} = 'authorization=Bearer%20s3cr3t-t0ken,garbage';
	local $ENV{OTEL_RESOURCE_ATTRIBUTES} = 'team';
	local $ENV{OTEL_EXPORTER_OTLP_TRACES_ENDPOINT} = 'http://127.0.0.1:3/traces';
	$node->start;
}
my $log = slurp_file($node->logfile, $offset);
like($log, qr{WARNING:  ignoring environment variable OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318"},
	'a bad OTEL_EXPORTER_OTLP_ENDPOINT is ignored with a warning');
like($log, qr{WARNING:  ignoring environment variable OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=},
	'so is a bad per-signal endpoint');
like($log, qr{WARNING:  ignoring environment variable OTEL_RESOURCE_ATTRIBUTES="team"},
	'so is a bad OTEL_RESOURCE_ATTRIBUTES');
like($log, qr{WARNING:  ignoring environment variable OTEL_EXPORTER_OTLP_HEADERS\n},
	'a bad OTEL_EXPORTER_OTLP_HEADERS is named without its value');
unlike($log, qr{s3cr3t}, 'the headers value is not logged');
is($node->safe_psql('postgres', q{
SELECT string_agg(name || '=' || boot_val, ' ' ORDER BY name) FROM pg_settings
 WHERE name IN ('fp_attribution.otlp_endpoint', 'fp_attribution.otlp_logs_endpoint',
				'fp_attribution.otlp_headers', 'fp_attribution.otlp_traces_endpoint')}),
	'fp_attribution.otlp_endpoint=http://localhost:4318 fp_attribution.otlp_headers= '
	. 'fp_attribution.otlp_logs_endpoint= fp_attribution.otlp_traces_endpoint=http://127.0.0.1:3/traces',
	'ignored variables leave the built-in defaults; valid ones are used');
$node->stop('fast');

done_testing();
