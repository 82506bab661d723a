#!/usr/bin/env bash
# Prints the path of a promtool binary for the /metrics test, fetching it when needed.
# Installing Debian's prometheus package would also install (and on a systemd host start) a
# Prometheus server, so only promtool is taken out of the package, into DIR (default
# build/tools). Prints nothing and exits 0 when it cannot be had; the test then says so.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/tools}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac

if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
if [ -x "$dir/promtool" ]; then
  echo "$dir/promtool"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download runs as the _apt user where it can: give it a directory it may write.
chmod 0777 "$work"
if (cd "$work" && apt-get download prometheus >/dev/null 2>&1) &&
   dpkg-deb -x "$work"/prometheus_*.deb "$work/pkg" &&
   [ -x "$work/pkg/usr/bin/promtool" ]; then
  mkdir -p "$dir"
  cp "$work/pkg/usr/bin/promtool" "$dir/promtool"
  echo "$dir/promtool"
fi
