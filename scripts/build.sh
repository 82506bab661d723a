#!/usr/bin/env bash
# Configures and builds frontdoor.
#   scripts/build.sh              -> build/       (RelWithDebInfo, the CMake default)
#   scripts/build.sh --sanitize   -> build-asan/  (same, plus ASan + UBSan)
# Installs missing Debian packages first. Re-running on an up-to-date tree only runs the
# (no-op) build step; CMake re-configures by itself when a CMakeLists.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [--sanitize]" >&2; exit 2; }

sanitize=OFF
build_dir=build
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=ON; build_dir=build-asan ;;
    -h|--help) usage ;;
    *) echo "build: unknown argument: $1" >&2; usage ;;
  esac
  shift
done

# test.sh and demo.sh have already checked the packages when they call us.
if [ -z "${FRONTDOOR_DEPS_CHECKED:-}" ]; then
  scripts/install-deps.sh
fi

needs_configure() {
  [ -f "$build_dir/CMakeCache.txt" ] || return 0
  # A configure step that failed leaves a cache but no build system.
  [ -f "$build_dir/Makefile" ] || [ -f "$build_dir/build.ninja" ] || return 0
  grep -qx "FRONTDOOR_SANITIZE:BOOL=$sanitize" "$build_dir/CMakeCache.txt" || return 0
  return 1
}

if needs_configure; then
  echo "build: configuring $build_dir (FRONTDOOR_SANITIZE=$sanitize)"
  cmake -S . -B "$build_dir" -DFRONTDOOR_SANITIZE:BOOL="$sanitize"
fi

cmake --build "$build_dir" --parallel "${FRONTDOOR_JOBS:-$(nproc)}"
echo "build: $build_dir is up to date"
