# The ledger worker: registered under its own backend type and wait event,
# connected to fp_attribution.otlp_database, it integrates the receipt
# logs (automatic approval: 008); while its integration waits on a lock,
# the exporter goes on exporting; it is restarted after
# pg_terminate_backend.  No collector is needed: the endpoint points at a
# closed port on 127.0.0.1 and the exporter's own log lines show that it
# ran.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ledger');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.otlp_endpoint = 'http://127.0.0.1:1'
fp_attribution.otlp_metric_interval = 200
fp_attribution.log_interval = 100
});
$node->start;

my $ledger = "backend_type = 'fp_attribution ledger'";
my $exporter = "backend_type = 'fp_attribution exporter'";

ok($node->poll_query_until('postgres',
	"SELECT wait_event_type = 'Extension' AND datname = 'postgres' FROM pg_stat_activity WHERE $ledger"),
	'ledger worker listed in pg_stat_activity, connected to otlp_database, Extension wait event');

$node->safe_psql('postgres', q{
CREATE EXTENSION fp_attribution;
SELECT 1 FROM attribution.track_click('aff-ledger', advertiser_id => 'adv-ledger');
});
ok($node->poll_query_until('postgres',
	"SELECT tree_size = 1 AND pending = 0 FROM attribution.log_status WHERE advertiser_id = 'adv-ledger'"),
	'the ledger worker integrates the receipt');

# Terminate a worker and wait for the postmaster to start a new one after
# bgw_restart_time; returns the new one's pid.
sub restart_worker
{
	my ($which) = @_;
	my $pid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE $which");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE $which AND pid <> $pid")
	  or return undef;
	return $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE $which");
}

# Integration stuck behind a lock on the log (EXCLUSIVE: reads go on, and
# a command never writes there) holds back no export: a new exporter (its
# first failure is logged at LOG) still sends its metrics.
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE attribution.log_entries IN EXCLUSIVE MODE');
$node->safe_psql('postgres',
	"SELECT 1 FROM attribution.track_click('aff-ledger', advertiser_id => 'adv-ledger')");
ok($node->poll_query_until('postgres',
	"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE $ledger"),
	'the ledger worker waits for the lock on the log');
my $offset = -s $node->logfile;
my $pid = restart_worker($exporter);
ok($pid, 'exporter restarted');
ok($node->wait_for_log(qr{\[$pid\] LOG:  fp_attribution exporter: will retry metrics}, $offset),
	'the exporter exports while integration waits');
is($node->safe_psql('postgres',
	"SELECT pending FROM attribution.log_status WHERE advertiser_id = 'adv-ledger'"), '1',
	'the receipt still waits');
$locker->quit;
ok($node->poll_query_until('postgres',
	"SELECT tree_size = 2 AND pending = 0 FROM attribution.log_status WHERE advertiser_id = 'adv-ledger'"),
	'integrated once the lock is gone');

# restart after pg_terminate_backend, and the new worker integrates
$pid = restart_worker($ledger);
ok($pid, 'ledger worker restarted after pg_terminate_backend');
$node->safe_psql('postgres',
	"SELECT 1 FROM attribution.track_click('aff-ledger', advertiser_id => 'adv-ledger')");
ok($node->poll_query_until('postgres',
	"SELECT tree_size = 3 AND pending = 0 FROM attribution.log_status WHERE advertiser_id = 'adv-ledger'"),
	'the restarted ledger worker integrates');

$node->stop('fast');
done_testing();
