#!/usr/bin/env bash
# Runs the fuzz targets built in BUILD_DIR (configured with -DSIGLITE_FUZZ=ON and clang) for SECONDS each, JOBS at a
# time, each on a scratch copy of its seed corpus (tests/fuzz/corpus/TARGET) so that what it adds stays out of the
# repository. Fails on the first target that crashes, leaks, hangs or allocates beyond the limit; the input that did
# it is kept in the target's output directory under OUT_DIR (default: BUILD_DIR/fuzz-runs).
#   tests/fuzz/run.sh BUILD_DIR SECONDS [JOBS] [TARGET...]
set -euo pipefail
build=$1
seconds=$2
jobs=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT_DIR:-$build/fuzz-runs}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for exe in "$build"/tests/fuzz/fuzz_*; do
    name=$(basename "$exe")
    [ "$name" = fuzz_make_seeds ] || targets+=("${name#fuzz_}")
  done
fi

run_one() {
  local t=$1 dir=$out/$1
  rm -rf "$dir" && mkdir -p "$dir/corpus"
  cp -r "$here/corpus/$t/." "$dir/corpus/"
  # Limits: 1 GiB for any single allocation and 2 GiB in all; 10 s for any one input.
  if "$build/tests/fuzz/fuzz_$t" "$dir/corpus" -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=1024 \
       -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/" >"$dir/log" 2>&1; then
    echo "fuzz_$t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | grep -o '[0-9]*$') inputs in ${seconds} s, corpus $(ls "$dir/corpus" | wc -l) files, no finding"
  else
    echo "fuzz_$t: FOUND a defect; the input is in $dir/ (log: $dir/log):"
    grep -m5 -E 'ERROR|SUMMARY|runtime error|does not name|deadly|Test unit written' "$dir/log" || tail -20 "$dir/log"
    return 1
  fi
}
export -f run_one
export out here build seconds
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
