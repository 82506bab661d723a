#!/usr/bin/env bash
# Installs the Debian 12 packages frontdoor needs to build, test and run its demo.
# Only what is missing is installed, and `apt-get update` runs only in that case, so this is
# cheap to call from every other script. Prints one summary line.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang-14 libclang-rt-14-dev
  libssl-dev libnghttp2-dev libevent-dev libcurl4-openssl-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev node-llhttp nlohmann-json3-dev libsystemd-dev
  curl openssl ca-certificates python3 python3-uvicorn python3-websockets python3-kubernetes python3-yaml python3-h2 nghttp2-client slowhttptest testssl.sh procps iproute2 pebble
)

is_installed() {
  # One status line per installed architecture; any "install ok installed" line counts.
  dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -qx 'install ok installed'
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: dpkg-query/apt-get not found; this script targets Debian 12 (bookworm)." >&2
  echo "install-deps: install these packages (or their equivalents): ${PACKAGES[*]}" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=(env)
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo env)
else
  echo "install-deps: missing packages and not running as root (no sudo found)." >&2
  echo "install-deps: as root, run: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

log="$(mktemp "${TMPDIR:-/tmp}/frontdoor-install-deps.XXXXXX")"
trap 'rm -f "$log"' EXIT

apt_get() {
  # Lock timeout: on a freshly booted machine unattended-upgrades may hold the dpkg lock.
  if ! "${as_root[@]}" DEBIAN_FRONTEND=noninteractive \
      apt-get -q -y -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1 </dev/null; then
    echo "install-deps: 'apt-get $*' failed; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
}

apt_get update
apt_get install --no-install-recommends "${missing[@]}"

still_missing=()
for pkg in "${missing[@]}"; do
  is_installed "$pkg" || still_missing+=("$pkg")
done
if [ "${#still_missing[@]}" -ne 0 ]; then
  echo "install-deps: still not installed after apt-get: ${still_missing[*]}" >&2
  cat "$log" >&2
  exit 1
fi

echo "install-deps: installed ${#missing[@]} missing package(s): ${missing[*]}"
