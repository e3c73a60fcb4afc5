# Shared by test/demo.sh and test/check.sh; source it, don't run it.

# Install dependencies, then copy the tree at $1 into a new directory under
# /tmp owned by the postgres OS user (the server refuses to run as root) and
# print that directory's name.
stage_tree() {
	local src=$1 dir
	bash "$src/test/install-deps.sh" >&2
	dir=$(mktemp -d /tmp/fp_attribution.XXXXXX)
	tar -C "$src" --exclude=.git --exclude=node_modules -cf - . | tar -C "$dir" -xf -
	chown -R postgres: "$dir"
	echo "$dir"
}

# Run a shell command as the postgres OS user.
as_postgres() {
	su postgres -s /bin/bash -c "$*"
}
