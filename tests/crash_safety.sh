#!/usr/bin/env bash
# Crash safety of siglite-train, with real signals. A run that saves a checkpoint after every step is killed with
# SIGKILL (at least 10 times, each soon after a random step ends, so that most kills land while a checkpoint is
# being written) and resumed each time until it completes: it must end on the uninterrupted run's weights,
# optimizer state, metrics and summary, bit for bit. Then SIGINT and SIGTERM: the run stops after its step, saves
# that step's checkpoint, exits 130 or 143 with one line saying how to continue, and the continued run ends on the
# same weights. Last, a full disk, made by a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so that a write
# fails with EFBIG): the checkpoint write fails, the run stops with an error naming the file and the system's
# message, the previous checkpoint is left whole, and the run continued from it ends on the same weights. Then
# metrics that meet a full disk (metrics.jsonl is a link to /dev/full) and a plot that cannot be written: the run
# warns once for each, naming the file, and ends on the uninterrupted run's checkpoint and summary.
# Usage: crash_safety.sh BIN_DIR WORK_DIR; exits 77 (skipped) without the dataset.
set -euo pipefail
bin=$1
work=$2
source "$(dirname "$0")/program_test.sh"
train=("$bin/siglite-train" --data fmnist --steps 60 --batch 32 --eval-limit 50 --seed 3)
untimed() { sed -E 's/"(pairs_per_s|elapsed_s|seconds)": ?[-+0-9.eE]+,?//g' "$1"; }
saved_step() { if [ -f "$1/trainer_state.json" ]; then sed -nE 's/ *"step": ([0-9]+).*/\1/p' "$1/trainer_state.json"; else echo 0; fi; }
same_run() {  # the checkpoint in $1 and its summary $2 against the uninterrupted run's
  for f in model.safetensors optimizer.safetensors config.json; do
    cmp -s "$work/straight/$f" "$1/$f" || fail "$1/$f differs from the uninterrupted run's"
  done
  cmp -s <(untimed "$work/straight/trainer_state.json") <(untimed "$1/trainer_state.json") ||
    fail "$1/trainer_state.json differs"
  cmp -s <(untimed "$work/straight/metrics.jsonl") <(untimed "$1/metrics.jsonl") || fail "$1/metrics.jsonl differs"
  cmp -s <(untimed "$work/straight.json") <(untimed "$2") || fail "$2 differs from the uninterrupted run's summary"
}
# Waits until the run $1 (pid) has logged step $3 in $2/metrics.jsonl or has ended.
wait_for_step() {
  while kill -0 "$1" 2> /dev/null && [ "$(lines "$2/metrics.jsonl")" -lt "$3" ]; do sleep 0.01; done
}

"${train[@]}" --out "$work/straight" > "$work/straight.json" 2> /dev/null

echo "== SIGKILL"
RANDOM=11  # the same moments on every run of the test
kills=0
during_write=0
while :; do
  resume=()
  [ -f "$work/killed/trainer_state.json" ] && resume=(--resume "$work/killed")
  from=$(saved_step "$work/killed")
  "${train[@]}" --out "$work/killed" --checkpoint-every 1 "${resume[@]}" > "$work/killed.json" 2> /dev/null &
  pid=$!
  if [ "$kills" -ge 10 ]; then
    wait "$pid" || fail "the last resumed run failed"
    break
  fi
  wait_for_step "$pid" "$work/killed" $((from + 1 + RANDOM % 4))
  sleep "0.0$((RANDOM % 10))"
  if ! kill -KILL "$pid" 2> /dev/null; then
    wait "$pid" || true
    fail "the run ended after $kills kills: too few steps to kill it 10 times"
    break
  fi
  wait "$pid" 2> /dev/null || true
  kills=$((kills + 1))
  [ -d "$work/killed/.checkpoint-staging" ] && during_write=$((during_write + 1))
  echo "kill $kills: after step $(lines "$work/killed/metrics.jsonl") (checkpoint at step $(saved_step "$work/killed"))"
done
echo "$kills kills, $during_write of them while a checkpoint was being written"
[ "$during_write" -ge 1 ] || fail "no kill landed during a checkpoint write"
same_run "$work/killed" "$work/killed.json"

for sig in INT TERM; do
  echo "== SIG$sig"
  dir=$work/sig$sig
  "${train[@]}" --out "$dir" > /dev/null 2> "$dir.err" &
  pid=$!
  wait_for_step "$pid" "$dir" 5
  kill -"$sig" "$pid"
  rc=0
  wait "$pid" || rc=$?
  expect=$([ "$sig" = INT ] && echo 130 || echo 143)
  [ "$rc" -eq "$expect" ] || fail "SIG$sig: exit status $rc, not $expect"
  message=$(tail -n 1 "$dir.err")
  echo "$message"
  [[ "$message" == *"stopped by SIG$sig after step $(saved_step "$dir");"*"--resume $dir" ]] ||
    fail "SIG$sig: the last line does not say where the run stopped and how to continue"
  [ "$(lines "$dir/metrics.jsonl")" -eq "$(saved_step "$dir")" ] || fail "SIG$sig: metrics and checkpoint disagree"
  "${train[@]}" --out "$dir" --resume "$dir" > "$dir.json" 2> /dev/null || fail "SIG$sig: the continued run failed"
  same_run "$dir" "$dir.json"
done
echo "== a full disk"
dir=$work/full
"${train[@]}" --out "$dir" --checkpoint-every 10 > /dev/null 2> /dev/null &
pid=$!
wait_for_step "$pid" "$dir" 12
kill -INT "$pid"
wait "$pid" || true
before=$(saved_step "$dir")
cp "$dir/model.safetensors" "$work/full-before.safetensors"
rc=0
(trap '' XFSZ && ulimit -f 64 && exec "${train[@]}" --out "$dir" --resume "$dir" --checkpoint-every 10) \
  > /dev/null 2> "$dir.err" || rc=$?
message=$(grep . "$dir.err" | tail -n 1)
echo "$message"
[ "$rc" -eq 1 ] || fail "full disk: exit status $rc, not 1"
[[ "$message" == *"$dir/.checkpoint-staging/model.safetensors"*"File too large"* ]] ||
  fail "full disk: the error does not name the file and the system's message"
[ "$(saved_step "$dir")" -eq "$before" ] || fail "full disk: the checkpoint moved from step $before"
cmp -s "$dir/model.safetensors" "$work/full-before.safetensors" || fail "full disk: the previous checkpoint changed"
[ ! -e "$dir/.checkpoint-staging" ] || fail "full disk: the staging folder was left behind"
"${train[@]}" --out "$dir" --resume "$dir" > "$dir.json" 2> /dev/null || fail "full disk: the continued run failed"
same_run "$dir" "$dir.json"

echo "== metrics and plots that cannot be written"
dir=$work/unwritable
mkdir -p "$dir/loss.png"                     # a folder where a plot goes: its rename fails
ln -s /dev/full "$dir/metrics.jsonl"        # every write fails with ENOSPC, as on a full disk
rc=0
"${train[@]}" --out "$dir" > "$dir.json" 2> "$dir.err" || rc=$?
grep "not written" "$dir.err" || true
[ "$rc" -eq 0 ] || fail "unwritable metrics and plots: exit status $rc, not 0"
[ "$(grep -c "metrics not written from step 1 on: $dir/metrics.jsonl: No space left on device" "$dir.err")" -eq 1 ] ||
  fail "unwritable metrics: not one warning naming the file and the system's message"
grep -q "plots not written: .*$dir/loss.png" "$dir.err" || fail "unwritable plot: no warning naming the file"
for f in model.safetensors optimizer.safetensors; do
  cmp -s "$work/straight/$f" "$dir/$f" || fail "unwritable metrics and plots: $f differs from the uninterrupted run's"
done
cmp -s <(untimed "$work/straight.json") <(untimed "$dir.json") ||
  fail "unwritable metrics and plots: the summary differs from the uninterrupted run's"
exit $status
