#!/bin/sh
# Installs the Debian packages the build, the tests and the benchmarks need
# (scripts/debian-packages.txt): apt-get update, then apt-get install -y.
# Uses sudo only when not already root.
set -eu
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2046 # one package per word, on purpose
$SUDO apt-get install -y --no-install-recommends $(cat debian-packages.txt)
