# Lifecycle of the OTLP export worker: registration under its own backend
# type and wait event, reload of a PGC_SIGHUP setting, restart after
# pg_terminate_backend, drain on shutdown.  No collector is needed: the
# endpoint points at a closed port on 127.0.0.1 and the worker's own log
# lines show what it did.
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

# terminated: the postmaster starts a new one after bgw_restart_time
my $pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE $exporter");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE $exporter AND pid <> $pid"),
	'worker restarted after pg_terminate_backend');

# shutdown drains with a bounded final flush, then exits
$offset = -s $node->logfile;
$node->stop('fast');
ok($node->wait_for_log(qr{fp_attribution exporter shutting down}, $offset),
	'worker shuts down cleanly');

done_testing();
