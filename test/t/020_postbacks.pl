# Postbacks end to end: the postback worker delivers the outbox rows the
# commands write to test/t/postback_receiver.js on 127.0.0.1 (a free
# port), which checks their HMAC signatures with its own code.  Covered:
# success with percent-encoded macros, idempotency key and traceparent;
# 503 then success; 429 with Retry-After; 400 given up at once;
# connection refused; a receiver that never answers (timeout); a held
# endpoint that does not delay another; disabling after repeated
# failures and re-enabling; kill -9 of the worker mid-delivery (sent again
# with the same key); a rolled-back command sends nothing; spans and
# metrics; retention of finished rows.
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

my $secret = 'test-secret-0123456789abcdef';
# longer than SHA-256's block (64 bytes): HMAC hashes it first
my $long_secret = 'long-secret-' . ('0123456789' x 8);
my $script = dirname(__FILE__) . '/postback_receiver.js';
my ($out, $err) = ('', '');
my $receiver = IPC::Run::start([ 'node', $script, "$secret $long_secret", 0 ],
	'>', \$out, '2>', \$err);
my $t0 = time;
$receiver->pump_nb while $out !~ /ready \d+/ && time - $t0 < 10;
like($out, qr/ready \d+/, 'receiver listening') or BAIL_OUT("receiver: $err");
my ($port) = $out =~ /ready (\d+)/;
my $base = "http://127.0.0.1:$port";

my $http = HTTP::Tiny->new;
sub control
{
	my ($method, $what) = @_;
	my $r = $http->request($method, "$base/control/$what");
	$r->{success} or die "receiver control $what failed";
	return $r->{content};
}
# the requests the receiver saw whose path starts with $prefix
sub seen
{
	my ($prefix) = @_;
	return [ grep { index($_->{url}, $prefix) == 0 }
		  @{ decode_json(control('GET', 'requests')) } ];
}

my $node = PostgreSQL::Test::Cluster->new('postbacks');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'fp_attribution'
fp_attribution.otlp_endpoint = 'http://127.0.0.1:1'
fp_attribution.postback_retry_initial = 200ms
fp_attribution.postback_retry_max = 3s
fp_attribution.postback_timeout = 2s
fp_attribution.postback_max_attempts = 6
fp_attribution.postback_disable_after = 3
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION fp_attribution');
# the worker's plans are made, and kept, on an outbox never analyzed (see
# "a backlog")
$node->safe_psql('postgres',
	'ALTER TABLE attribution.postback_outbox SET (autovacuum_enabled = off)');

# one endpoint per case, one affiliate per endpoint
sub endpoint
{
	my ($affiliate, $url, $method, $with_secret) = @_;
	my $key = ($with_secret // '') eq 'long' ? $long_secret : $secret;
	$method //= 'GET';
	my $id = $node->safe_psql('postgres', qq{
		INSERT INTO attribution.postback_endpoints (affiliate_id, url_template, method)
		VALUES ('$affiliate', '$url', '$method') RETURNING endpoint_id});
	$node->safe_psql('postgres', qq{
		INSERT INTO attribution.postback_secrets (endpoint_id, secret) VALUES ($id, '$key')})
	  if $with_secret;
	return $id;
}
my $n = 0;
# a click of the affiliate and an order attributed to it; returns the order id
sub convert
{
	my ($affiliate, $order) = @_;
	$n++;
	$order //= "order-$n";
	$node->safe_psql('postgres', qq{
		SELECT count(*) FROM attribution.track_click('$affiliate', visitor_id => 'v$n');
		SELECT count(*) FROM attribution.track_conversion(\$o\$$order\$o\$, 1999, 'EUR', visitor_id => 'v$n');});
	return $order;
}
# $count postbacks of the affiliate enqueued with delivery off (orders
# "$prefix-1" ...), in one statement; resume_delivery() turns it back on
sub enqueue_paused
{
	my ($affiliate, $prefix, $count) = @_;
	$node->safe_psql('postgres', 'ALTER SYSTEM SET fp_attribution.postback_enabled = off');
	$node->reload;
	$node->safe_psql('postgres', qq{
		SELECT count(*) FROM generate_series(1, $count) i,
			LATERAL attribution.track_click('$affiliate', visitor_id => 'v$prefix-' || i) c,
			LATERAL attribution.track_conversion('$prefix-' || i, 100, click_id => c.aggregate_id::uuid)});
}
sub resume_delivery
{
	$node->safe_psql('postgres', 'ALTER SYSTEM RESET fp_attribution.postback_enabled');
	$node->reload;
}
sub delivery
{
	my ($order, $cols) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT $cols FROM attribution.postback_deliveries WHERE order_id = \$o\$$order\$o\$ ORDER BY created_at, event});
}
sub wait_for
{
	my ($order, $cols, $expected, $what) = @_;
	ok($node->poll_query_until('postgres', qq{
		SELECT $cols FROM attribution.postback_deliveries WHERE order_id = \$o\$$order\$o\$ ORDER BY created_at, event},
		$expected), $what)
	  or diag(delivery($order, '*'));
}

# --- success: GET with macros, percent-encoded; key, traceparent, signature
my $ok_id = endpoint('aff-ok',
	"$base/ok/a?o={order_id}&c={click_id}&s={status}&r={revenue_cents}&k={commission_cents}&cur={currency}&e={event}&t={trace_id}",
	'GET', 1);
my $order = convert('aff-ok', 'order 1/&?é');
wait_for($order, 'state, attempts, last_http_status', 'delivered|1|200', 'a postback is delivered');
my ($req) = @{ seen('/ok/a') };
my ($key, $trace) = split /\|/, delivery($order, 'delivery_id, trace_id');
like($req->{url}, qr{^/ok/a\?o=order%201%2F%26%3F%C3%A9&c=[0-9a-f-]{36}&s=pending&r=1999&k=&cur=EUR&e=tracked&t=$trace$},
	'macros are expanded and percent-encoded');
is($req->{idempotency_key}, $key, 'the Idempotency-Key is the delivery id');
like($req->{traceparent}, qr/^00-$trace-[0-9a-f]{16}-01$/, 'traceparent continues the conversion\'s trace');
is($req->{signature_key}, 0, 'the receiver verifies the HMAC signature of a GET');
$node->safe_psql('postgres', qq{SELECT count(*) FROM attribution.approve_conversion(\$o\$$order\$o\$)});
wait_for($order, 'event, state', "tracked|delivered\napproved|delivered",
	'a status change sends its own postback');

# --- a rolled-back command sends nothing
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT count(*) FROM attribution.track_click('aff-ok', visitor_id => 'v-rb');
	SELECT count(*) FROM attribution.track_conversion('order-rolled-back', 100, visitor_id => 'v-rb');
	ROLLBACK;});
my $after = convert('aff-ok');
wait_for($after, 'state', 'delivered', 'the next committed conversion is delivered');
is(scalar(grep { $_->{url} =~ /order-rolled-back/ } @{ seen('/ok/') }), 0,
	'a rolled-back conversion sends no postback');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox WHERE order_id = 'order-rolled-back'}),
	'0', 'and leaves no outbox row');

# --- a backlog: each result is written by its row's key.  Enqueued with
# delivery off, then delivered; the outbox has never been analyzed.  The
# outbox rows the worker reads through its indexes (the test's own
# queries scan the table) stay a few per postback: the claim's and the
# result's.  A result statement
# that scanned the advertiser's rows read them all in every cycle (with 4
# requests per endpoint, over 50 cycles of the 200 postbacks and more:
# over 10,000 reads).
my $outbox_reads = q{
	SELECT sum(pg_stat_get_tuples_fetched(indexrelid)) FROM pg_index
	 WHERE indrelid = 'attribution.postback_outbox'::regclass};
endpoint('aff-bulk', "$base/ok/bulk?o={order_id}");
enqueue_paused('aff-bulk', 'bulk', 200);
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox WHERE affiliate_id = 'aff-bulk' AND state = 'pending'}),
	'200', 'a backlog of 200 postbacks');
my $reads = $node->safe_psql('postgres', $outbox_reads);
resume_delivery();
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox WHERE affiliate_id = 'aff-bulk' AND state = 'delivered'},
	'200'), 'the backlog is delivered');
# every delivered row was read at least twice, claimed and written; the
# worker sends its counts at most once a second
ok($node->poll_query_until('postgres', "SELECT ($outbox_reads) - $reads >= 400"),
	'its reads are counted');
$node->safe_psql('postgres', 'SELECT pg_sleep(2.5)');
cmp_ok($node->safe_psql('postgres', $outbox_reads) - $reads, '<', 2000,
	'the worker reads a few outbox rows per postback, not the backlog in every cycle');

# --- an analyzed outbox: each row of a cycle's attempts gets its own
# outcome (503 then 200, 404 given up, 200), still with a few reads per
# postback.
endpoint('aff-mixed', "$base/script/mixed");
control('POST', 'script?name=mixed&answers=503,404');
enqueue_paused('aff-mixed', 'mixed', 8);
$node->safe_psql('postgres', 'ANALYZE attribution.postback_outbox');
$reads = $node->safe_psql('postgres', $outbox_reads);
resume_delivery();
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox
	 WHERE affiliate_id = 'aff-mixed' AND state <> 'pending'}, '8'),
	'the postbacks of the analyzed outbox are finished');
is($node->safe_psql('postgres', q{
	SELECT state, attempts, last_http_status, coalesce(last_error, '-'), count(*)
	  FROM attribution.postback_outbox WHERE affiliate_id = 'aff-mixed'
	 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2}),
	"delivered|1|200|-|6\ndelivered|2|200|-|1\nfailed|1|404|HTTP 404|1",
	'each row has its own result');
is(scalar(@{ seen('/script/mixed') }), 9, 'nine requests');
cmp_ok($node->safe_psql('postgres', $outbox_reads) - $reads, '<', 200,
	'the worker reads a few outbox rows per postback');

# --- the outbox's rows are written in place (postback_rows.c) unless it
# has INSERT or UPDATE triggers of its own: then by the enqueue's INSERT
# and the worker's UPDATE statements, which fire them (statement
# triggers: writing in place would fire none)
$node->safe_psql('postgres', q{
	CREATE TABLE outbox_audit (op text, delivery_id uuid, state text, attempts int);
	CREATE FUNCTION audit_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO outbox_audit SELECT TG_OP, delivery_id, state, attempts FROM changed;
		RETURN NULL;
	END $$;
	CREATE TRIGGER audit_insert AFTER INSERT ON attribution.postback_outbox
		REFERENCING NEW TABLE AS changed
		FOR EACH STATEMENT EXECUTE FUNCTION audit_outbox();
	CREATE TRIGGER audit_update AFTER UPDATE ON attribution.postback_outbox
		REFERENCING NEW TABLE AS changed
		FOR EACH STATEMENT EXECUTE FUNCTION audit_outbox();});
endpoint('aff-audit', "$base/ok/audit?o={order_id}");
enqueue_paused('aff-audit', 'audit', 3);
resume_delivery();
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox WHERE affiliate_id = 'aff-audit' AND state = 'delivered'},
	'3'), 'with triggers on the outbox, postbacks are enqueued and delivered');
is($node->safe_psql('postgres', q{
	SELECT a.op, a.state, a.attempts, count(*) FROM outbox_audit a
	  JOIN attribution.postback_outbox o USING (delivery_id)
	 WHERE o.affiliate_id = 'aff-audit' GROUP BY 1, 2, 3 ORDER BY 1}),
	"INSERT|pending|0|3\nUPDATE|delivered|1|3", 'and the triggers see each row enqueued and each result');
$node->safe_psql('postgres', q{
	DROP TRIGGER audit_insert ON attribution.postback_outbox;
	DROP TRIGGER audit_update ON attribution.postback_outbox;
	DROP TABLE outbox_audit;
	DROP FUNCTION audit_outbox();});

# --- 503 then success, POST with a signed JSON body
control('POST', 'script?name=flaky&answers=503,200');
endpoint('aff-flaky', "$base/script/flaky", 'POST', 1);
$order = convert('aff-flaky');
wait_for($order, 'state, attempts, last_http_status', 'delivered|2|200', '503 is retried, then delivered');
my @reqs = @{ seen('/script/flaky') };
is(scalar(@reqs), 2, 'two requests');
is($reqs[0]{idempotency_key}, $reqs[1]{idempotency_key}, 'with the same idempotency key');
is_deeply([ map { $_->{signature_key} } @reqs ], [ 0, 0 ],
	'the receiver verifies the HMAC signature of both POST bodies');

my $body = decode_json($reqs[0]{body});
is_deeply([ @$body{qw(event order_id revenue_cents currency affiliate_id)} ],
	[ 'tracked', $order, 1999, 'EUR', 'aff-flaky' ], 'the JSON body carries the conversion');

# --- a secret longer than a SHA-256 block signs as HMAC says (the key hashed)
endpoint('aff-longkey', "$base/ok/longkey", 'POST', 'long');
$order = convert('aff-longkey');
wait_for($order, 'state', 'delivered', 'a postback signed with a long secret is delivered');
is_deeply([ map { $_->{signature_key} } @{ seen('/ok/longkey') } ], [1],
	'the receiver verifies its signature with the long secret');

# --- 429 with Retry-After: 1 (longer than the 200 ms backoff)
control('POST', 'script?name=busy&answers=429:1,200');
endpoint('aff-busy', "$base/script/busy");
$order = convert('aff-busy');
wait_for($order, 'state, attempts', 'delivered|2', '429 is retried');
@reqs = @{ seen('/script/busy') };
cmp_ok($reqs[1]{time} - $reqs[0]{time}, '>=', 900, 'after the Retry-After');

# --- 400: no retry
control('POST', 'script?name=bad&answers=400');
endpoint('aff-bad', "$base/script/bad");
$order = convert('aff-bad');
wait_for($order, 'state, attempts, last_http_status, last_error', 'failed|1|400|HTTP 400',
	'400 is given up at once');

# --- a receiver that never answers: the request times out and is retried
endpoint('aff-hang', "$base/hang/x");
$order = convert('aff-hang');
wait_for($order, "attempts >= 1, last_error ~* 'timed? ?out', state", 't|t|pending',
	'a request that gets no answer times out and will be retried');
$node->safe_psql('postgres', q{UPDATE attribution.postback_endpoints SET active = false WHERE affiliate_id = 'aff-hang'});

# --- connection refused; disabled after 3 failures in a row; re-enabled
my $dead = endpoint('aff-dead', 'http://user:pw@127.0.0.1:1/dead?token=abc');
$order = convert('aff-dead');
ok($node->poll_query_until('postgres', qq{
	SELECT consecutive_failures, disabled_at IS NOT NULL FROM attribution.postback_endpoints
	 WHERE endpoint_id = $dead}, '3|t'), 'a refusing endpoint is disabled after 3 failed attempts');
is(delivery($order, 'state, attempts, last_http_status IS NULL, endpoint_enabled, url'),
	'pending|3|t|f|http://***@127.0.0.1:1/dead?***',
	'its postback waits, with its URL redacted');
like(delivery($order, 'last_error'), qr/connect/i, 'the error says the connection failed');
$node->safe_psql('postgres', qq{
	UPDATE attribution.postback_endpoints SET url_template = '$base/ok/revived' WHERE endpoint_id = $dead});
is($node->safe_psql('postgres', "SELECT attribution.enable_postback_endpoint($dead)"), 't',
	'enable_postback_endpoint re-enables it');
wait_for($order, 'state, attempts', 'delivered|4', 'and its postback is delivered');

# --- a held endpoint does not delay another; at most 4 requests per endpoint
$node->append_conf('postgresql.conf', "fp_attribution.postback_timeout = 60s\n");
$node->reload;
control('POST', 'hold?name=slow');
endpoint('aff-slow', "$base/held/slow");
my @slow = map { convert('aff-slow') } 1 .. 6;
$t0 = time;
sleep 0.1 while control('GET', 'open') < 4 && time - $t0 < 60;
is(control('GET', 'open'), '4', 'four requests wait on the held endpoint (its concurrency)');
$order = convert('aff-ok');
wait_for($order, 'state', 'delivered', 'another endpoint is delivered meanwhile');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE attempts = 0) FROM attribution.postback_deliveries WHERE affiliate_id = 'aff-slow'}),
	'6', 'while every held postback is still in its first attempt');
control('POST', 'release?name=slow');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM attribution.postback_deliveries WHERE affiliate_id = 'aff-slow' AND state = 'delivered'},
	'6'), 'released, all six are delivered');

# --- telemetry (before the crash, which resets shared memory): a span per
# attempt in the conversion's trace; the metrics
is($node->safe_psql('postgres', qq{
	SELECT count(*) > 0 FROM attribution.spans s
	  JOIN attribution.postback_deliveries d ON d.trace_id = s.trace_id
	 WHERE d.affiliate_id = 'aff-flaky' AND s.kind = 'client' AND s.name = 'POST'
	   AND s.attributes ->> 'http.response.status_code' IN ('503', '200')}),
	't', 'attempts are client spans in the conversion\'s trace');
is($node->safe_psql('postgres', q{
	SELECT string_agg(name || '=' || (coalesce(value, count) > 0), ',' ORDER BY name)
	  FROM attribution.metrics WHERE name LIKE 'postbacks.%'}),
	'postbacks.failed=true,postbacks.latency=true,postbacks.retried=true,postbacks.sent=true',
	'postbacks.sent, .failed, .retried and .latency count');

# --- kill -9 of the worker mid-delivery: nothing lost, sent again with the same key
control('POST', 'hold?name=crash');
endpoint('aff-crash', "$base/held/crash");
$order = convert('aff-crash');
$t0 = time;
sleep 0.1 while !@{ seen('/held/crash') } && time - $t0 < 60;
is(scalar(@{ seen('/held/crash') }), 1, 'the postback is in flight');
my $pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'fp_attribution postbacks'});
kill 'KILL', $pid;
control('POST', 'release?name=crash');
# the postmaster restarts every process after the crash: wait for a new
# postback worker (queries fail meanwhile)
my $new_pid = '';
$t0 = time;
{
	local $SIG{PIPE} = 'IGNORE';
	while (($new_pid eq '' || $new_pid eq $pid) && time - $t0 < 120)
	{
		sleep 0.2;
		$new_pid = eval { $node->safe_psql('postgres',
			q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'fp_attribution postbacks'}) } // '';
	}
}
isnt($new_pid, $pid, 'the server restarted the postback worker');
ok($node->poll_query_until('postgres', qq{
	SELECT state FROM attribution.postback_deliveries WHERE order_id = '$order'}, 'delivered'),
	'after the crash and restart the postback is delivered');
@reqs = @{ seen('/held/crash') };
cmp_ok(scalar(@reqs), '>=', 2, 'sent again after the crash');
is(scalar(keys %{ { map { $_->{idempotency_key} => 1 } @reqs } }), 1, 'with the same idempotency key');

# --- retention: finished rows older than fp_attribution.postback_retention
# are deleted, in batches, oldest first; pending and recent ones stay.
# 2500 copies of a delivered row, 10 days old (three batches), and the
# finished rows so far 2 days old; the crash's postback stays recent.
$node->safe_psql('postgres', qq{
	INSERT INTO attribution.postback_outbox (advertiser_id, endpoint_id, event, order_id,
		affiliate_id, status, revenue_cents, refunded_cents, currency, receipt_id,
		trace_id, span_id, sampled, state, done_at)
	SELECT advertiser_id, endpoint_id, event, 'old-' || i, affiliate_id, status,
		   revenue_cents, refunded_cents, currency, receipt_id, trace_id, span_id,
		   sampled, 'delivered', now() - interval '10 days'
	  FROM attribution.postback_outbox, generate_series(1, 2500) i
	 WHERE order_id = '$order';
	UPDATE attribution.postback_outbox SET done_at = now() - interval '2 days'
	 WHERE state <> 'pending' AND order_id <> '$order' AND order_id NOT LIKE 'old-%'});
# (a pending one may finish meanwhile: it is then recent)
my $kept = $node->safe_psql('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox
	 WHERE state = 'pending' OR done_at > now() - interval '1 day'});
my $two_days = $node->safe_psql('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox
	 WHERE done_at < now() - interval '1 day' AND order_id NOT LIKE 'old-%'});
cmp_ok($two_days, '>', 0, 'finished postbacks 2 days old');
# a reload makes the worker purge at once; the default keeps 7 days.  The
# three batches go in three cycles (about a second each), well before the
# purge that is otherwise due once a minute.
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
{
	local $PostgreSQL::Test::Utils::timeout_default = 40;
	ok($node->poll_query_until('postgres', q{
		SELECT count(*) FROM attribution.postback_outbox WHERE order_id LIKE 'old-%'}, '0'),
		'postbacks finished 10 days ago are deleted, batch after batch');
}
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox WHERE done_at < now() - interval '1 day'}),
	$two_days, 'those finished 2 days ago are kept (retention 7 days)');
$node->safe_psql('postgres', q{ALTER SYSTEM SET fp_attribution.postback_retention = '1d'});
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox WHERE done_at < now() - interval '1 day'}, '0'),
	'with fp_attribution.postback_retention = 1d they are deleted too');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM attribution.postback_outbox
	 WHERE state = 'pending' OR done_at > now() - interval '1 day'}),
	$kept, 'pending and recently finished postbacks stay');

$node->stop;
$receiver->kill_kill;
done_testing();
