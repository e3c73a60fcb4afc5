#!/bin/bash
# The subsystems of src/ depend on each other in one direction only: no
# folder calls into a folder that calls back into it (directly or through
# others).  Read from the built objects, so it sees calls, not includes:
# each object's undefined symbols are matched with the object defining
# them, edges between objects of different folders are kept (the glue at
# the top of src/ counts as one node per file), and the graph must have no
# cycle.  Prints the order it found, lowest layer first.
#
# usage: test/module_layers.sh <built source tree>
set -uo pipefail
cd "$1" || exit 1
objs=$(find src -name '*.o' ! -path 'src/otlp/*' | sort)
[ -n "$objs" ] || { echo "FAIL: no objects under $1/src (build first)"; exit 1; }
for o in $objs; do
	nm "$o" | sed "s|^|$o |"
done | perl -e '
	my (%def, @uses, %edge, %nodes);
	sub node { my $o = shift; $o =~ m{^src/([^/]+)/} ? "src/$1" : $o }
	while (<>) {
		my @f = split;
		if (@f == 4 && $f[2] =~ /^[TDBR]$/) { $def{$f[3]} = $f[0] }
		elsif (@f == 3 && $f[1] eq "U") { push @uses, [$f[0], $f[2]] }
		$nodes{node($f[0])} = 1;
	}
	for (@uses) {
		my ($o, $sym) = @$_;
		next unless exists $def{$sym};
		my ($a, $b) = (node($o), node($def{$sym}));
		$edge{$a}{$b} .= " $sym" if $a ne $b && index($edge{$a}{$b} // "", " $sym") < 0;
	}
	# peel off nodes that call no remaining node (Kahn, on reversed edges)...
	my %left = %nodes; my @order;
	while (1) {
		my @free = grep { my $a = $_; !grep { $left{$_} } keys %{$edge{$a} // {}} } sort keys %left;
		last unless @free;
		push @order, @free; delete @left{@free};
	}
	# ...and those no remaining node calls: what is left lies on a cycle
	while (1) {
		my @top = grep { my $b = $_; !grep { $left{$_} && exists $edge{$_}{$b} } keys %left } sort keys %left;
		last unless @top;
		delete @left{@top};
	}
	if (%left) {
		print "FAIL: subsystems call each other in a cycle:\n";
		for my $a (sort keys %left) {
			for my $b (sort keys %{$edge{$a} // {}}) {
				print "  $a -> $b:$edge{$a}{$b}\n" if $left{$b};
			}
		}
		exit 1;
	}
	print "PASS: subsystem layers, lowest first: @order\n";
'
