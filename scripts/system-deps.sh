#!/bin/sh
# Install the Debian packages cartoparty needs when they are missing: PostgreSQL with PostGIS
# (unless DATABASE_URL names an existing server) and any package named as an argument.
# As root it installs them; otherwise it prints the one command to run and stops.
set -eu

missing=""
if [ -z "${DATABASE_URL:-}" ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
  ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 \
    || missing="$missing postgresql-postgis"
fi
for package in "$@"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "cartoparty needs these Debian packages:$missing" >&2
  echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi
echo "installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
