#!/usr/bin/env bash
# siglite-train under mpirun. Two ranks with the chunked loss (and the gathered one) against one process with the
# tiled loss, on the same global batch, seed and steps: the same loss at every step (to rounding), the ranks'
# weights checked identical every 5 steps, one summary (rank 0's). Then a rank killed with SIGKILL in the middle of a
# run that saves every 2 steps: the job must end within seconds with an error instead of hanging, and the job resumed
# from its checkpoint must end on the weights of a job never interrupted, bit for bit.
# Usage: train_ranks.sh BIN_DIR WORK_DIR MPIEXEC; exits 77 (skipped) without the dataset.
set -euo pipefail
bin=$1
work=$2
mpiexec=$3
source "$(dirname "$0")/../program_test.sh"
export OMP_NUM_THREADS=1
ranks=("$mpiexec" -np 2 --allow-run-as-root --oversubscribe)
train=("$bin/siglite-train" --data fmnist --batch 32 --eval-limit 200 --seed 3)
# The largest relative difference between the losses of the metrics files $1 and $2, step by step.
loss_gap() {
  python3 - "$1" "$2" << 'EOF'
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(p)] for p in sys.argv[1:3])
assert len(a) == len(b) and a, f"{len(a)} and {len(b)} steps"
print(max(abs(x - y) / abs(y) for x, y in zip(a, b)))
EOF
}

"${train[@]}" --steps 20 --out "$work/one" > "$work/one.json" 2> /dev/null
for loss in chunked gathered; do
  echo "== 2 ranks, $loss loss"
  "${ranks[@]}" "${train[@]}" --steps 20 --loss "$loss" --check-sync 5 --out "$work/$loss" > "$work/$loss.json" \
    2> "$work/$loss.err" || { cat "$work/$loss.err"; fail "mpirun -np 2 siglite-train --loss $loss failed"; }
  gap=$(loss_gap "$work/$loss/metrics.jsonl" "$work/one/metrics.jsonl") || fail "metrics of $loss"
  echo "largest relative difference of a step's loss from one process: $gap"
  python3 -c "import sys; sys.exit(0 if float('$gap') <= 1e-4 else 1)" || fail "the $loss losses differ by $gap"
  [ "$(grep -c . "$work/$loss.json")" -eq 1 ] || fail "expected one summary line (rank 0's), got: $(cat "$work/$loss.json")"
  grep -q '"steps":20' "$work/$loss.json" || fail "the summary does not say 20 steps: $(cat "$work/$loss.json")"
done

echo "== a rank killed"
"${ranks[@]}" "${train[@]}" --steps 60 --loss chunked --out "$work/straight" > /dev/null 2>&1 ||
  fail "the uninterrupted 60-step run failed"
"${ranks[@]}" "${train[@]}" --steps 60 --loss chunked --checkpoint-every 2 --out "$work/killed" \
  > /dev/null 2> "$work/killed.err" &
job=$!
while kill -0 "$job" 2> /dev/null && [ "$(lines "$work/killed/metrics.jsonl")" -lt 5 ]; do
  sleep 0.02
done
victim=""
for pid in $(pgrep -f "siglite-train --data fmnist" || true); do
  if tr '\0' '\n' < "/proc/$pid/environ" 2> /dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$pid; fi
done
if [ -z "$victim" ]; then
  fail "rank 1 of the job was not found (did the run end before it was killed?)"
  wait "$job" || true
else
  kill -9 "$victim"
  killed_at=$(date +%s.%N)
  rc=0
  wait "$job" || rc=$?
  took=$(python3 -c "print(round($(date +%s.%N) - $killed_at, 1))")
  echo "mpirun ended $took s after rank 1 was killed, with status $rc"
  [ "$rc" -ne 0 ] || fail "mpirun exited 0 after a rank was killed"
  python3 -c "import sys; sys.exit(0 if $took < 30 else 1)" || fail "the job took $took s to end"
  step=$(sed -nE 's/ *"step": ([0-9]+).*/\1/p' "$work/killed/trainer_state.json")
  echo "the checkpoint holds step $step; resuming"
  "${ranks[@]}" "${train[@]}" --steps 60 --loss chunked --checkpoint-every 2 --out "$work/killed" \
    --resume "$work/killed" > /dev/null 2>&1 || fail "the resumed job failed"
  cmp -s "$work/straight/model.safetensors" "$work/killed/model.safetensors" ||
    fail "the resumed job's weights differ from the uninterrupted job's"
fi
exit "$status"
