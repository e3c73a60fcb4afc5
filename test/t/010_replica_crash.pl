# Operations: the rows and receipts reach a streaming replica intact (it
# verifies them, and refuses commands as a read-only server must), and
# survive a crash of the primary (kill -9 of the postmaster's children via
# an immediate stop), after which chains continue where they were.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.otlp_endpoint = 'http://127.0.0.1:1'
});
$primary->start;
$primary->safe_psql('postgres', q{
CREATE EXTENSION fp_attribution;
SELECT count(attribution.track_click('aff-' || i % 3,
	click_id => ('d0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, visitor_id => 'v' || i))
  FROM generate_series(1, 50) AS i;
SELECT count(attribution.track_conversion('order-' || i, 100 * i, visitor_id => 'v' || i))
  FROM generate_series(1, 20) AS i;
SELECT count(attribution.append_receipt('custom', 'agg', jsonb_build_object('n', i)))
  FROM generate_series(1, 5) AS i;
});
my $fingerprint = q{
SELECT (SELECT md5(string_agg(c::text, '|' ORDER BY click_id)) FROM attribution.clicks c) || ' ' ||
	   (SELECT md5(string_agg(v::text, '|' ORDER BY order_id)) FROM attribution.conversions v) || ' ' ||
	   (SELECT md5(string_agg(r::text, '|' ORDER BY aggregate_type, aggregate_id, sequence))
		  FROM attribution.receipts r)
};
my $verify = q{SELECT ok || ' ' || chains_checked || ' ' || receipts_checked FROM attribution.verify_all()};
my $before = $primary->safe_psql('postgres', $fingerprint);
is($primary->safe_psql('postgres', $verify), 'true 71 75', 'primary verifies 71 chains, 75 receipts');

# a streaming replica
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->safe_psql('postgres', q{SELECT count(*) FROM attribution.track_click('aff-late')});
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', $verify), 'true 72 76',
	'the replica verifies every chain, including one written after the backup');
my ($rc, $out, $err) = $standby->psql('postgres',
	q{SELECT attribution.track_click('aff-on-standby')});
like($err, qr/read-only transaction/, 'a command on the replica is refused as read-only');
is($standby->safe_psql('postgres',
	q{SELECT count(*) FROM attribution.clicks WHERE affiliate_id = 'aff-on-standby'}),
	'0', 'and writes nothing');

# a crash: no shutdown checkpoint, recovery replays the WAL
$primary->stop('immediate');
$primary->start;
is($primary->safe_psql('postgres', $verify), 'true 72 76', 'everything verifies after the crash');
is($primary->safe_psql('postgres',
	q{SELECT sequence FROM attribution.append_receipt('custom', 'agg', '{"n": 6}')}),
	'6', 'the custom chain continues at sequence 6 after the crash');
my @before = split / /, $before;
is($primary->safe_psql('postgres', q{
	SELECT md5(string_agg(c::text, '|' ORDER BY click_id)) FROM attribution.clicks c
	 WHERE affiliate_id <> 'aff-late'}),
	$before[0], 'the clicks from before the crash are unchanged');
is($primary->safe_psql('postgres', q{
	SELECT md5(string_agg(v::text, '|' ORDER BY order_id)) FROM attribution.conversions v}),
	$before[1], 'and so are the conversions');

$standby->stop;
$primary->stop;
done_testing();
