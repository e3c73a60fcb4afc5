#!/bin/bash
# Install everything fp_attribution needs to build, run and test on a fresh
# Debian 12 machine.  Run as root; safe to run again.
set -euo pipefail

packages=(
	build-essential
	postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
	libkrb5-dev	# libpq/libpq-be.h includes <gssapi/gssapi.h> (Debian builds with GSS)
	libprotobuf-c-dev protobuf-c-compiler
	libcurl4-openssl-dev libssl-dev zlib1g-dev
	libipc-run-perl
	openssl curl python3 procps
	golang-go golang-golang-x-mod-dev	# test/log_verify (GOPATH mode, offline)
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
