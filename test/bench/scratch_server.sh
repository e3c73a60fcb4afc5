# Shared by the benchmarks that load data into a throw-away server; source
# it, don't run it.  Run as root: the server runs as the postgres OS user.
#
# scratch_server_start NAME [EXTRA postgresql.conf LINES]
#   initdb and start a server with the extension created, in a new
#   directory $tmp (removed, server stopped, on exit); then
#   as_pg CMD      runs CMD as the postgres OS user
#   psql ARGS...   runs psql (unaligned, quiet, stop on error) against it
bin=$(pg_config --bindir)
as_pg() { su postgres -s /bin/bash -c "$*"; }
psql() { as_pg "$bin/psql -X -q -At -v ON_ERROR_STOP=1 -h $tmp -d postgres $(printf '%q ' "$@")"; }

scratch_server_start() {
	tmp=$(mktemp -d "/tmp/fp_$1.XXXXXX")
	chown postgres: "$tmp"
	trap 'as_pg "$bin/pg_ctl -D $tmp/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
	as_pg "$bin/initdb -D $tmp/data -A trust" >/dev/null
	cat >>"$tmp/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$tmp'
synchronous_commit = off
${2:-}
CONF
	as_pg "$bin/pg_ctl -D $tmp/data -l $tmp/log -w start" >/dev/null
	psql -c "CREATE EXTENSION fp_attribution"
}
