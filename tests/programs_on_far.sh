#!/usr/bin/env bash
# siglite-train, siglite-eval and siglite-embed on the far test device (their copies NAME-far with --device far)
# give the CPU's results bit for bit: 20 training steps on Fashion-MNIST (progress, summary, every file of the
# checkpoint), the evaluation's JSON line and the embeddings file. Timings are left out of the comparison. Then
# a device the machine lacks is a one-line error, --precision tf32 gives the CPU's run and bf16 is refused, and
# siglite-embed embeds images from a directory without a tokenizer (as transformers' save_pretrained writes one)
# but refuses texts there. Usage: programs_on_far.sh BIN_DIR WORK_DIR; exits 77 (skipped) without the dataset.
set -euo pipefail
bin=$1
work=$2
source "$(dirname "$0")/program_test.sh"

for device in cpu far; do
  suffix=$([ "$device" = far ] && echo -far || true)
  echo "== $device"
  "$bin/siglite-train$suffix" --device "$device" --data fmnist --steps 20 --batch 64 --eval-limit 200 \
    --out "$work/$device" > "$work/$device.train.json"
  # Evaluation and embeddings of one checkpoint, the CPU's run, on each device.
  "$bin/siglite-eval$suffix" --device "$device" --checkpoint "$work/cpu" --data fmnist --limit 200 \
    > "$work/$device.eval.json" 2> /dev/null
  "$bin/siglite-embed$suffix" --device "$device" --checkpoint "$work/cpu" --output "$work/$device.embed.safetensors" \
    --images "$work/cpu/loss.png" "$work/cpu/t_b.png" --texts "a photo of a shirt" "an ankle boot" > /dev/null
done

untimed() { sed -E 's/"(pairs_per_s|elapsed_s|seconds)": ?[-+0-9.eE]+,?//g' "$1"; }
compare() {
  if [[ "$1" == *.json || "$1" == *.jsonl ]]; then
    same=$(cmp -s <(untimed "$1") <(untimed "$2") && echo yes || echo no)
  else
    same=$(cmp -s "$1" "$2" && echo yes || echo no)
  fi
  if [ "$same" = yes ]; then
    echo "same: ${1#"$work"/}"
  else
    echo "DIFFERENT: $1 and $2"
    status=1
  fi
}
files=0
for f in "$work"/cpu/*; do
  compare "$f" "$work/far/$(basename "$f")"
  files=$((files + 1))
done
[ "$files" -ge 5 ] || { echo "the checkpoint has only $files files"; status=1; }
for f in train.json eval.json embed.safetensors; do compare "$work/cpu.$f" "$work/far.$f"; done

# cuda where this build or this machine lacks it, and the far device in a program that does not register it: one
# line each.
for device in cuda far; do
  if out=$("$bin/siglite-eval" --device "$device" --checkpoint "$work/cpu" --data fmnist 2>&1); then
    echo "siglite-eval --device $device ran"
    status=1
  elif [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ] || [[ "$out" != "siglite-eval: --device $device: "* ]]; then
    echo "siglite-eval --device $device: not a one-line error: $out"
    status=1
  else
    echo "refused: $out"
  fi
done

# --precision: tf32 trains (the CPU computes float32 either way: the same run), bf16 is a one-line error.
"$bin/siglite-train" --precision tf32 --data fmnist --steps 20 --batch 64 --eval-limit 200 --out "$work/tf32" \
  > /dev/null
compare "$work/cpu/model.safetensors" "$work/tf32/model.safetensors"
if out=$("$bin/siglite-train" --precision bf16 --data fmnist --steps 1 2>&1); then
  echo "siglite-train --precision bf16 ran"
  status=1
elif [ "$(printf '%s\n' "$out" | grep -c .)" -ne 1 ] || [[ "$out" != *"bf16 mixed precision is not implemented"* ]]; then
  echo "siglite-train --precision bf16: not a one-line error: $out"
  status=1
else
  echo "refused: $out"
fi

mkdir -p "$work/no_tokenizer"
cp "$work/cpu/config.json" "$work/cpu/model.safetensors" "$work/no_tokenizer/"
if ! "$bin/siglite-embed" --checkpoint "$work/no_tokenizer" --images "$work/cpu/loss.png" \
     --output "$work/no_tokenizer.embed.safetensors" > /dev/null; then
  echo "siglite-embed --images failed on a directory without a tokenizer"
  status=1
fi
if out=$("$bin/siglite-embed" --checkpoint "$work/no_tokenizer" --texts "a shirt" --output "$work/x.safetensors" 2>&1); then
  echo "siglite-embed --texts ran without a tokenizer"
  status=1
elif [[ "$out" != *"holds no tokenizer"* ]]; then
  echo "siglite-embed --texts without a tokenizer: $out"
  status=1
else
  echo "refused: $out"
fi
exit $status
