# Command durations: monotonic whatever the wall clock does, and ended
# when the statement ends under the extended query protocol too.
use strict;
use warnings;
use Config;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# A wall clock that steps back one second at every reading: a preloaded
# shim over clock_gettime(CLOCK_REALTIME), which only fp_attribution
# reads (PostgreSQL's own timestamps use gettimeofday).
my $dir = PostgreSQL::Test::Utils::tempdir;
open(my $fh, '>', "$dir/clock_step.c") or die;
print $fh <<'C';
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>

static long steps;

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real) (clockid_t, struct timespec *);
	int			rc;

	if (real == NULL)
		real = (int (*) (clockid_t, struct timespec *)) dlsym(RTLD_NEXT, "clock_gettime");
	rc = real(id, ts);
	if (rc == 0 && id == CLOCK_REALTIME)
		ts->tv_sec -= ++steps;
	return rc;
}
C
close($fh);
my $cc = `pg_config --cc`;
chomp $cc;
system("$cc -shared -fPIC -o $dir/clock_step.so $dir/clock_step.c -ldl") == 0
  or BAIL_OUT('cannot build the clock shim');

my $node = PostgreSQL::Test::Cluster->new('telemetry_timing');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
});
{
	local $ENV{LD_PRELOAD} = "$dir/clock_step.so";
	$node->start;
}
$node->safe_psql('postgres', 'CREATE EXTENSION fp_attribution');

# Clicks, alone and several to a transaction, while the clock steps back
$node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT attribution.track_click('step-' || i) FROM generate_series(1, 5) i) t;
	BEGIN;
	SELECT count(*) FROM attribution.track_click('step-tx-1');
	SELECT count(*) FROM attribution.track_click('step-tx-2');
	COMMIT;
	INSERT INTO attribution.clicks (affiliate_id) SELECT 'step-direct' FROM generate_series(1, 3);});
my ($count, $sum) = split /\|/, $node->safe_psql('postgres', q{
	SELECT count, sum FROM attribution.metrics
	 WHERE name = 'commands.latency' AND attributes->>'fp.command.name' = 'track_click'});
is($count, '10', 'every command in commands.latency');
cmp_ok($sum, '>=', 0, 'commands.latency sum not negative');
cmp_ok($sum, '<', 60, 'commands.latency sum sane (not ~1.8e10 s)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM attribution.spans WHERE end_time < start_time}),
	'0', 'no span ends before it starts');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM attribution.spans WHERE duration_ms > 60000}),
	'0', 'no span lasts a minute');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE (attributes->>'fp.command.duration')::float8 BETWEEN 0 AND 60)
	  FROM attribution.logs WHERE event_name = 'fp.command.succeeded'}),
	'10', 'fp.command.duration of every command between 0 and 60 s');
$node->stop;
$node->start;

# Extended protocol inside a transaction: the portal of the SELECT stays
# open until the next statement, but the command ends with its execution.
# pgbench sends each statement with Parse/Bind/Execute (extended) or
# prepared statements, and sleeps 300 ms before COMMIT.
my $script = "$dir/extended.sql";
open($fh, '>', $script) or die;
print $fh "BEGIN;\nSELECT count(*) FROM attribution.track_click('extended', traceparent => :tp);\n\\sleep 300 ms\nCOMMIT;\n";
close($fh);
for my $mode ('extended', 'prepared')
{
	$node->safe_psql('postgres', 'SELECT attribution.reset_telemetry()');
	$node->command_ok(
		[
			'pgbench', '-n', '-M', $mode, '-t', '1', '-f', $script,
			'-D', q{tp='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'},
			'-p', $node->port, '-h', $node->host, 'postgres'
		],
		"pgbench -M $mode");
	my ($n, $latency, $span_ms) = split /\|/, $node->safe_psql('postgres', q{
		SELECT m.count, m.sum, s.duration_ms
		  FROM attribution.metrics m, attribution.spans s
		 WHERE m.name = 'commands.latency' AND m.attributes->>'fp.command.name' = 'track_click'
		   AND s.name = 'attribution.track_click'});
	is($n, '1', "$mode: one command");
	cmp_ok($latency, '<', 0.3, "$mode: commands.latency excludes the 300 ms before COMMIT");
	cmp_ok($span_ms, '<', 300, "$mode: the command span ends with its statement");
}

$node->stop;
done_testing();
