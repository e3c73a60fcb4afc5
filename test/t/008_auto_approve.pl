# Automatic approval by the background worker: off by default; after a
# reload of fp_attribution.auto_approve_interval the worker approves the
# conversion whose hold period has passed, by an ordinary command (a
# receipt with its reason), and leaves the one still in its hold period
# and the one held by a fraud rule.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('auto_approve');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.fraud_min_click_age = '1h'
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION fp_attribution;
INSERT INTO attribution.offers (offer_id, payout_type, payout, hold_period)
	VALUES ('o', 'cpa', 100, '1 day');
SELECT attribution.track_click('a', offer_id => 'o', clicked_at => now() - interval '3 days',
	click_id => ('a7000000-0000-4000-8000-00000000000' || i)::uuid)
  FROM generate_series(1, 3) i;
-- due; held by the click-age rule; still in its hold period
SELECT attribution.track_conversion('due', 100, click_id => 'a7000000-0000-4000-8000-000000000001',
	converted_at => now() - interval '2 days');
SELECT attribution.track_conversion('held', 100, click_id => 'a7000000-0000-4000-8000-000000000002',
	converted_at => now() - interval '3 days' + interval '1 minute');
SELECT attribution.track_conversion('young', 100, click_id => 'a7000000-0000-4000-8000-000000000003');
});

my $statuses = q{SELECT string_agg(order_id || ':' || status, ',' ORDER BY order_id)
	FROM attribution.conversions};
is($node->safe_psql('postgres', $statuses), 'due:pending,held:pending,young:pending',
	'all pending; automatic approval is off by default');

$node->safe_psql('postgres',
	"ALTER SYSTEM SET fp_attribution.auto_approve_interval = '100ms'");
$node->reload;
ok($node->poll_query_until('postgres',
	"SELECT status = 'approved' FROM attribution.conversions WHERE order_id = 'due'"),
	'the worker approves the due conversion after the reload');
is($node->safe_psql('postgres', $statuses), 'due:approved,held:pending,young:pending',
	'not the one held by a fraud rule nor the one in its hold period');
is($node->safe_psql('postgres', q{SELECT payload->>'event' || '/' || (payload->>'reason')
	FROM attribution.receipts WHERE aggregate_id = 'due' AND sequence = 2}),
	'conversion_approved/hold period passed', 'an ordinary command with its receipt');
is($node->safe_psql('postgres',
	"SELECT ok FROM attribution.verify_chain('conversion', 'due')"), 't',
	'the chain verifies');

$node->stop;
done_testing();
