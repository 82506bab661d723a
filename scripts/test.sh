#!/usr/bin/env bash
# Builds frontdoor and runs its test suite with CTest.
#   scripts/test.sh              normal suite, then the ASan + UBSan suite with the fuzz targets
#                                (what CI runs; the sanitizer build runs during the normal tests)
#   scripts/test.sh --normal     normal build only (build/)
#   scripts/test.sh --sanitize   ASan + UBSan build only (build-asan/)
# Arguments after `--` go to ctest, e.g. `scripts/test.sh -- -R config -L unit`.
# Exits non-zero if a build or any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [--normal | --sanitize] [-- CTEST_ARGS...]" >&2; exit 2; }

mode=all
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) mode=sanitize ;;
    --normal) mode=normal ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "test: unknown argument: $1" >&2; usage ;;
  esac
  shift
done

scripts/install-deps.sh
export FRONTDOOR_DEPS_CHECKED=1
# The integration tests serve the development certificate (certs-dev/out/).
certs-dev/make-dev-certs.sh
# test_admin validates /metrics with promtool when one can be had.
FRONTDOOR_PROMTOOL=$(scripts/fetch-promtool.sh || true)
export FRONTDOOR_PROMTOOL

# A passing suite whose Docker tests were skipped (no engine here) must not look complete.
warn_skipped_docker() {
  local log=$1/Testing/Temporary/LastTest.log
  if [ -f "$log" ] && grep -q '^SKIP: docker-lab' "$log"; then
    echo "== test: WARNING: the Docker tests were SKIPPED: the docker-lab engine could not" \
         "start here; the reason is in $log (search for docker_lab_up)" >&2
  fi
}

# The sanitizer variant's build, started in the background at the lowest CPU priority while
# the normal suite runs: those tests mostly wait (on timeouts, peers, Docker), and the build
# takes the idle CPU without slowing them. Its output goes to a log shown when it is waited for.
background_build_pid=
background_build_log=build-asan/background-build.log
start_background_sanitize_build() {
  mkdir -p build-asan
  # Its own process group (setsid), so that an interrupted run (Ctrl-C, a CI timeout) stops
  # the whole build, compilers included.
  setsid nice -n 19 scripts/build.sh --sanitize >"$background_build_log" 2>&1 &
  background_build_pid=$!
  trap 'kill -- "-$background_build_pid" 2>/dev/null || true' EXIT
}

# run_suite normal|sanitize: builds that variant (or waits for its background build) and runs
# its tests. Returns 1 if the build failed, 2 if tests failed.
run_suite() {
  local variant=$1 build_dir=build build_args=() start=$SECONDS
  if [ "$variant" = sanitize ]; then
    build_dir=build-asan
    build_args=(--sanitize)
  fi
  if [ "$variant" = sanitize ] && [ -n "$background_build_pid" ]; then
    echo "== test: waiting for the $variant build started in the background ($build_dir)"
    local built=0
    wait "$background_build_pid" || built=$?
    cat "$background_build_log"
    rm -f "$background_build_log"
    if [ "$built" -ne 0 ]; then
      echo "== test: $variant build FAILED" >&2
      return 1
    fi
  else
    echo "== test: building the $variant variant ($build_dir)"
    if ! scripts/build.sh "${build_args[@]}"; then
      echo "== test: $variant build FAILED" >&2
      return 1
    fi
    if [ "$variant" = normal ] && [ "$mode" = all ]; then
      start_background_sanitize_build
    fi
  fi
  echo "== test: running the $variant suite"
  if (
    if [ "$variant" = sanitize ]; then
      export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
      export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    fi
    # stdin from /dev/null: CI runs us without one, and a closed fd 0 gets reused by sockets.
    # -j2: the integration tests still run one at a time (RESOURCE_LOCK in tests/CMakeLists.txt);
    # the Docker test runs beside them.
    ctest --test-dir "$build_dir" --output-on-failure --no-tests=error --timeout 900 \
      --parallel "${FRONTDOOR_TEST_JOBS:-2}" \
      "${ctest_args[@]}" </dev/null
  ); then
    echo "== test: $variant suite passed ($((SECONDS - start))s)"
    warn_skipped_docker "$build_dir"
    return 0
  fi
  warn_skipped_docker "$build_dir"
  echo "== test: $variant suite FAILED ($((SECONDS - start))s)" >&2
  return 2
}

case "$mode" in
  normal) run_suite normal ;;
  sanitize) run_suite sanitize ;;
  all)
    status=0
    run_suite normal || status=$?
    # A failed build would fail the same way again; failed tests still get the sanitizer run,
    # which often says why.
    if [ "$status" -eq 1 ]; then
      exit 1
    fi
    run_suite sanitize || status=$?
    if [ "$status" -ne 0 ]; then
      echo "== test: FAILED (see above)" >&2
      exit 1
    fi
    echo "== test: all suites passed"
    ;;
esac
