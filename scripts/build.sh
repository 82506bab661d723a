#!/usr/bin/env bash
# Configures and builds frontdoor.
#   scripts/build.sh              -> build/       (RelWithDebInfo, the CMake default)
#   scripts/build.sh --sanitize   -> build-asan/  (same, plus ASan + UBSan, built with clang,
#                                                  and the libFuzzer targets of tests/fuzz)
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

# libFuzzer comes with clang only; the sanitizer build is a clang build so that it holds the
# fuzz targets too (one build fewer in CI).
configure_args=(-DFRONTDOOR_SANITIZE:BOOL="$sanitize")
if [ "$sanitize" = ON ]; then
  configure_args+=(-DFRONTDOOR_FUZZ:BOOL=ON -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14)
fi

needs_configure() {
  [ -f "$build_dir/CMakeCache.txt" ] || return 0
  # A configure step that failed leaves a cache but no build system.
  [ -f "$build_dir/Makefile" ] || [ -f "$build_dir/build.ninja" ] || return 0
  grep -qx "FRONTDOOR_SANITIZE:BOOL=$sanitize" "$build_dir/CMakeCache.txt" || return 0
  if [ "$sanitize" = ON ]; then
    grep -qx "FRONTDOOR_FUZZ:BOOL=ON" "$build_dir/CMakeCache.txt" || return 0
  fi
  return 1
}

if needs_configure; then
  echo "build: configuring $build_dir (FRONTDOOR_SANITIZE=$sanitize)"
  # The compiler of a build tree cannot change: an older tree made with gcc starts afresh.
  rm -rf "$build_dir/CMakeCache.txt" "$build_dir/CMakeFiles"
  cmake -S . -B "$build_dir" "${configure_args[@]}"
fi

cmake --build "$build_dir" --parallel "${FRONTDOOR_JOBS:-$(nproc)}"
echo "build: $build_dir is up to date"
