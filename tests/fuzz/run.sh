#!/bin/sh
# Runs one fuzz target for a bounded time: `run.sh TARGET SEEDS WORK SECONDS [DICT]`.
# New inputs go to WORK/corpus (the seeds in the source tree are only read), crashes to
# WORK/artifacts. Exits non-zero on a finding, printing the input's path and how to replay it.
set -eu
target=$1 seeds=$2 work=$3 seconds=$4
dict=${5:+-dict=$5}
mkdir -p "$work/corpus" "$work/artifacts"
# -rss_limit_mb: ASan's shadow memory counts; -timeout: one input taking this long is a hang.
if "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" $dict "$work/corpus" "$seeds"; then
  exit 0
fi
echo "fuzz: $(basename "$target") found a problem; replay it with: $target $work/artifacts/<file>" >&2
ls -l "$work/artifacts" >&2
exit 1
