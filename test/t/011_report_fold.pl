# The ledger worker folds the report rollup: with folding off
# (fp_attribution.report_compact_interval = 0) clicks and a conversion's
# changes stay in attribution.report_deltas and the reports are exact
# anyway; after a reload to a short interval the worker folds them into
# one totals row per key, and the reports do not change.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('report_fold');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.report_compact_interval = 0
});
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION fp_attribution;
SELECT attribution.track_click('a', click_id => ('a8000000-0000-4000-8000-00000000000' || i)::uuid,
	clicked_at => '2026-06-01 10:00+00', advertiser_id => adv)
  FROM generate_series(1, 3) i, (VALUES ('default'), ('other')) v(adv);
SELECT attribution.track_conversion('order-1', 1000, click_id => 'a8000000-0000-4000-8000-000000000001',
	converted_at => '2026-06-01 11:00+00');
SELECT attribution.approve_conversion('order-1');
});

my $report = q{SELECT string_agg(advertiser_id || ':' || clicks || '/' || conversions || '/' || approved,
	',' ORDER BY advertiser_id) FROM attribution.daily_report};
my $rows = q{SELECT (SELECT count(*) FROM attribution.report_deltas) || ' ' ||
	(SELECT count(*) FROM attribution.report_totals)};
is($node->safe_psql('postgres', $report), 'default:3/1/1,other:3/0/0',
	'the reports are exact with nothing folded');
is($node->safe_psql('postgres', $rows), '9 0',
	'folding off: 6 clicks, the conversion and its approval (2) are deltas');

$node->safe_psql('postgres',
	"ALTER SYSTEM SET fp_attribution.report_compact_interval = '100ms'");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM attribution.report_deltas"),
	'the worker folds every advertiser\'s deltas after the reload');
is($node->safe_psql('postgres', $rows), '0 3',
	'one totals row per key: the clicks of each advertiser, the conversion\'s currency row');
is($node->safe_psql('postgres', $report), 'default:3/1/1,other:3/0/0',
	'the same reports');

$node->stop;
done_testing();
