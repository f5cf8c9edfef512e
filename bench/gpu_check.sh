#!/usr/bin/env bash
# bench/gpu_check.sh: siglite's CUDA backend tested, and measured against PyTorch on the same NVIDIA GPU, in one run
# of under 5 minutes (GPU_CHECK_SECONDS, default 290, bounds the whole run).
#
# Run it from the repository root on a machine with an NVIDIA GPU, nvcc, CMake and the Debian build dependencies of
# .ci/install-deps (and PyTorch with CUDA in python3 for the PyTorch side):
#
#   bash bench/gpu_check.sh
#
# Progress lines go to stderr; one JSON line per figure goes to stdout, and also to $OUT/gpu_check.jsonl when OUT is
# set; the progress lines and the end of every command's output go to $OUT/gpu_check.log (else
# build-gpu/gpu_check/gpu_check.log). Every command runs under `timeout` with a limit of its own, cut to what is left
# of the whole run; a step that fails or runs out prints its figure's line with "error" (saying "skipped" when no
# time was left to start it) and the run goes on.
#
#   a. the GPU (nvidia-smi -L), nvcc, and python3's torch. Without torch only the siglite side runs (this script
#      installs nothing: on a machine without network, `pip install torch` is not possible anyway).
#   b. a Release build in build-gpu/ (SIGLITE_WITH_CUDA=ON, CMAKE_CUDA_ARCHITECTURES=90, benchmarks on) of
#      siglite_tests, siglite-bench and siglite-train, after a check of the build dependencies that names each
#      missing one with its Debian package.
#   c. the CUDA tests (siglite_tests "[cuda]") and the op table's device cases (siglite_tests
#      "[ops]~[gradcheck]~[golden]": every row on every registered device, the GPU included, and every error case on
#      every device; the table's gradient and golden cases run on the CPU alone and are left out): pass/fail counts.
#   d. siglite-bench against bench/torch_siglip.py on the GPU, both from the same initial weights and batch (the
#      siglite run writes them with --save-init, PyTorch loads them, as bench/compare.py pairs the two sides), 5 steps
#      after 2 warm-up steps: training steps of bench-tiny at batch 1024 and of b16 at batch 256, and the b16 image
#      tower's inference at batch 256, each in fp32, tf32 and bf16 (siglite has no bf16 yet: its side says "not
#      implemented" and PyTorch's autocast runs alone); then the tiled sigmoid loss forward + backward at d = 768,
#      tile 4096: n = 32768 (fp32), 262144 (fp32, tf32) and 1048576 (tf32 only: in fp32, its 6.8 PFLOP of GEMMs, run
#      twice, the loss and then its GEMMs alone, would not fit the time). PyTorch's loss is the naive one (n x n
#      logits): it fits the GPU at n = 32768 only and is reported as not runnable above that. Each line has both
#      sides' JSON, "ratio" (siglite's throughput over PyTorch's) and the two sides' agreement (first loss, first
#      embedding element).
#
# The PyTorch model is torch_siglip.py's plain copy of Hugging Face's SiglipModel (same names and arithmetic, eager
# attention, no transformers needed); GPU_CHECK_TORCH_MODEL=hf takes transformers' SiglipModel instead.
#
# Time: a cold build takes most of the first two minutes on 16 cores (an estimate from the compile times on a 2-core
# machine, not yet measured on a GPU machine); the figures come in the order above until the limit, and those it
# leaves out are reported as skipped. build-gpu/ is reused, so a second run on the same machine builds nothing and
# can name only the groups the first had no time for: GPU_CHECK_STEPS="b16 infer loss" bash bench/gpu_check.sh
# (groups: tests tiny b16 infer loss; default all).
#
# A machine without the Debian packages and without network: on a Debian 12 machine, fetch them into build-deps/
# (ignored by git) and take that folder along; this script unpacks every .deb there into build-gpu/deps and builds
# against it (GPU_CHECK_DEPS names another folder):
#   mkdir -p build-deps && (cd build-deps && apt-get download libeigen3-dev nlohmann-json3-dev catch2 \
#       libbenchmark-dev libbenchmark1debian libstb-dev libstb0 libpng-dev libpng16-16 libjpeg62-turbo-dev \
#       libjpeg62-turbo zlib1g-dev)
set -euo pipefail

START=$(date +%s)
BUDGET=${GPU_CHECK_SECONDS:-290}
DEADLINE=$((START + BUDGET))
GROUPS_WANTED=" ${GPU_CHECK_STEPS:-tests tiny b16 infer loss} "
TORCH_MODEL=${GPU_CHECK_TORCH_MODEL:-plain}
DEPS_DEBS=${GPU_CHECK_DEPS:-build-deps}
BUILD=build-gpu
WORK=$BUILD/gpu_check  # outputs of each command, the initial weights and batches
BENCH=$BUILD/bench/siglite-bench
TESTS=$BUILD/tests/siglite_tests
STEPS=5
WARMUP=2
LOSS_TILE=4096

if [[ ! -f bench/gpu_check.sh || ! -f CMakeLists.txt ]]; then
  echo "gpu_check: run it from the repository root: bash bench/gpu_check.sh" >&2
  exit 2
fi
mkdir -p "$WORK"
LOG=$WORK/gpu_check.log
if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT"
  : >"$OUT/gpu_check.jsonl"
  LOG=$OUT/gpu_check.log
fi
: >"$LOG"
ERRORS=0

elapsed() { echo $(($(date +%s) - START)); }
say() {  # a progress line on stderr and in the log
  echo "gpu_check [$(elapsed) s]: $*" >&2
  echo "gpu_check [$(elapsed) s]: $*" >>"$LOG"
}
emit() {  # one figure's JSON line: stdout, and $OUT/gpu_check.jsonl
  echo "$1"
  if [[ -n ${OUT:-} ]]; then echo "$1" >>"$OUT/gpu_check.jsonl"; fi
  if [[ $1 == *'"error"'* ]]; then ERRORS=$((ERRORS + 1)); fi
}
jstr() {  # a JSON string of $1
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/ }
  s=${s//$'\r'/}
  s=${s//$'\n'/ | }
  printf '"%s"' "$s"
}
want() { [[ $GROUPS_WANTED == *" $1 "* ]]; }

# limited CAP OUTFILE CMD...: CMD with stdout to OUTFILE and stderr to OUTFILE.err, under `timeout` with CAP seconds
# or what is left of the run, whichever is less; its exit status (124 or 137: ran out; 125: no time left to start).
# LIMIT holds the limit it had.
LIMIT=0
limited() {
  local cap=$1 out=$2
  shift 2
  local left=$((DEADLINE - $(date +%s)))
  LIMIT=$((cap < left ? cap : left))
  if ((LIMIT < 10)); then
    echo "skipped: the run's time limit (GPU_CHECK_SECONDS=$BUDGET) was used up" >"$out.err"
    : >"$out"
    return 125
  fi
  local rc=0
  timeout --kill-after=10 "$LIMIT" "$@" >"$out" 2>"$out.err" || rc=$?
  {
    echo "--- $* (exit $rc)"
    if ((rc != 0)); then tail -n 40 "$out"; fi
    tail -n 40 "$out.err"
  } >>"$LOG"
  return "$rc"
}

# why OUTFILE RC: what went wrong, in a line: the last lines of the command's stderr that speak of an error, or
# else its last lines.
why() {
  local out=$1 rc=$2 text
  case $rc in
    124 | 137) echo "timed out after $LIMIT s" ;;
    125) cat "$out.err" ;;
    *)
      text=$(grep -iE 'error|exception|fail|what\(\)' "$out.err" 2>/dev/null | tail -n 2) ||
        text=$(grep -v '^[[:space:]]*$' "$out.err" 2>/dev/null | tail -n 3) || text=""
      text=$(echo "$text" | tr '\n' ' ' | sed 's/  */ /g; s/ $//' | cut -c1-600)
      echo "exit $rc${text:+: $text}"
      ;;
  esac
}

HAVE_PY=0
if command -v python3 >/dev/null 2>&1; then HAVE_PY=1; fi

# The JSON of the figure lines is put together in Python (json module); bash alone writes the few plain ones.
JSONPY=$WORK/gpu_check_json.py
cat >"$JSONPY" <<'PY'
"""Composes gpu_check.sh's figure lines from the two sides' outputs. Usage:
  pair FIGURE MODE NOTE S_OUT S_STATE T_OUT T_STATE   (a state is "ok" or the reason the side has no figure)
  tests FIGURE SELECTION OUT RC"""
import json
import re
import sys


def last_json(path):
    try:
        with open(path) as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip().startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def side(out, state):
    if state != "ok":
        return None, state
    j = last_json(out)
    return (j, None) if j is not None else (None, "no JSON line in its output")


def pair(figure, mode, note, s_out, s_state, t_out, t_state):
    line = {"figure": figure}
    if note:
        line["note"] = note
    s, s_why = side(s_out, s_state)
    t, t_why = side(t_out, t_state)
    line["siglite"] = s if s is not None else s_why
    line["pytorch"] = t if t is not None else t_why
    if s is not None and t is not None:
        if mode in ("train", "infer"):
            rate = "pairs_per_s" if mode == "train" else "images_per_s"
            line["ratio"] = s[rate] / t[rate]
            if mode == "train":
                a, b = s["first_loss"], t["first_loss"]
                line["first_loss_rel_diff"] = abs(a - b) / max(abs(a), abs(b), 1e-30)
            else:
                line["first_embedding_abs_diff"] = abs(s["first_embedding"] - t["first_embedding"])
            if s.get("peak_device_mib") and t.get("peak_device_mib"):
                line["peak_device_ratio"] = s["peak_device_mib"] / t["peak_device_mib"]
        elif mode == "loss" and not t.get("skipped"):
            line["ratio"] = t["seconds"] / s["seconds"]  # PyTorch's seconds over siglite's
    if mode == "loss" and s is not None:
        line["siglite_loss_over_gemm"] = s.get("loss_over_gemm")
        line["siglite_peak_beyond_inputs_mib"] = s.get("peak_beyond_inputs_mib")
    if t is not None and t.get("skipped"):
        line["pytorch"] = "not runnable: " + t.get("reason", "")
    errors = [f"{name}: {why}" for name, why, val in (("siglite", s_why, s), ("pytorch", t_why, t))
              if val is None and why not in ("not implemented", "no torch")]
    if errors:
        line["error"] = "; ".join(errors)
    print(json.dumps(line))


def tests(figure, selection, out, rc):
    line = {"figure": figure, "selection": selection, "exit": int(rc)}
    try:
        with open(out, errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    m = re.search(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)", text)
    if m:
        line.update({"cases_passed": int(m.group(2)), "cases_failed": 0, "assertions_passed": int(m.group(1)),
                     "assertions_failed": 0})
    else:
        c = re.search(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", text)
        a = re.search(r"assertions:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", text)
        if c:
            line.update({"cases_passed": int(c.group(2)), "cases_failed": int(c.group(3))})
        if a:
            line.update({"assertions_passed": int(a.group(2)), "assertions_failed": int(a.group(3))})
    line["skip_warnings"] = len(re.findall(r"skipped: ", text))
    failed = re.findall(r"^(.+?):\d+: FAILED:", text, re.M)
    if int(rc) != 0 or line.get("cases_failed"):
        line["error"] = (f"exit {rc}" + (f", {line['cases_failed']} test case(s) failed" if line.get("cases_failed")
                                         else "") + (f" (first failure at {failed[0]})" if failed else ""))
        if "cases_passed" not in line:
            line["error"] += ": no Catch summary (crashed or timed out)"
    print(json.dumps(line))


if __name__ == "__main__":
    if sys.argv[1] == "pair":
        pair(*sys.argv[2:9])
    else:
        tests(*sys.argv[2:6])
PY

# ---------------------------------------------------------------------------------------------------------------
# a. The machine

say "a. the GPU, nvcc and python3's torch"
GPU_LIST=$(timeout 20 nvidia-smi -L 2>&1) || GPU_LIST="nvidia-smi failed: $GPU_LIST"
NVCC=$(command -v nvcc || true)
if [[ -z $NVCC && -x /usr/local/cuda/bin/nvcc ]]; then NVCC=/usr/local/cuda/bin/nvcc; fi
NVCC_VERSION=$([[ -n $NVCC ]] && "$NVCC" --version 2>/dev/null | grep -o 'release [0-9.]*' || echo "no nvcc")
HAVE_TORCH=0
TORCH_INFO="no python3"
if ((HAVE_PY)); then
  if TORCH_INFO=$(timeout 60 python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpu",
torch.cuda.is_available() and torch.cuda.get_device_name())' 2>&1); then
    HAVE_TORCH=1
  else
    TORCH_INFO="python3 ($(command -v python3)) cannot import torch: $(echo "$TORCH_INFO" | tail -n 1)"
    TORCH_INFO+="; this script installs nothing (without network, pip install torch is not possible): only the"
    TORCH_INFO+=" siglite side runs"
  fi
fi
say "GPU: $GPU_LIST"
say "nvcc: $NVCC_VERSION; torch: $TORCH_INFO"
emit "{\"figure\":\"machine\",\"nvidia_smi\":$(jstr "$GPU_LIST"),\"nvcc\":$(jstr "$NVCC_VERSION"),\"torch\":$(jstr \
"$TORCH_INFO"),\"torch_usable\":$([[ $HAVE_TORCH == 1 ]] && echo true || echo false),\"cpus\":$(nproc)}"

# ---------------------------------------------------------------------------------------------------------------
# b. The build

say "b. the build dependencies"
PREFIX_ARGS=()
DEPS_PREFIX=""
shopt -s nullglob
debs=("$DEPS_DEBS"/*.deb)
shopt -u nullglob
if ((${#debs[@]})); then
  mkdir -p "$BUILD/deps"
  DEPS_PREFIX=$(cd "$BUILD/deps" && pwd)
  for f in "${debs[@]}"; do dpkg-deb -x "$f" "$DEPS_PREFIX"; done
  PREFIX_ARGS=(-DCMAKE_PREFIX_PATH="$DEPS_PREFIX/usr")
  export LD_LIBRARY_PATH="$DEPS_PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "unpacked ${#debs[@]} .deb files of $DEPS_DEBS/ into $DEPS_PREFIX"
fi
missing=()
for tool in cmake c++; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ -n $NVCC ]] || missing+=("nvcc (the CUDA toolkit)")
if command -v c++ >/dev/null 2>&1; then
  includes=()
  if [[ -n $DEPS_PREFIX ]]; then includes=(-I"$DEPS_PREFIX/usr/include" -I"$DEPS_PREFIX/usr/include/eigen3"); fi
  # header, Debian package
  for pair in "eigen3/Eigen/Core libeigen3-dev" "nlohmann/json.hpp nlohmann-json3-dev" \
    "catch2/catch.hpp catch2 (Catch2 v2, as Debian 12 has it)" "benchmark/benchmark.h libbenchmark-dev" \
    "zlib.h zlib1g-dev" "png.h libpng-dev" "jpeglib.h libjpeg62-turbo-dev" "stb/stb_image_write.h libstb-dev" \
    "omp.h libgomp (GCC's OpenMP)"; do
    header=${pair%% *}
    if ! echo "#include <$header>" | c++ -fopenmp -E -x c++ "${includes[@]}" - >/dev/null 2>&1; then
      if [[ $header == eigen3/* ]] && echo "#include <Eigen/Core>" | c++ -E -x c++ "${includes[@]}" - >/dev/null 2>&1
      then continue; fi
      missing+=("<$header>: ${pair#* }")
    fi
  done
fi
if ((${#missing[@]})); then
  list=$(printf '%s; ' "${missing[@]}")
  say "missing: ${list%; }"
  emit "{\"figure\":\"build dependencies\",\"error\":$(jstr "missing: ${list%; } (Debian: .ci/install-deps; a machine \
without network: bring their .deb files in $DEPS_DEBS/, see this script's header)")}"
else
  emit "{\"figure\":\"build dependencies\",\"missing\":[]}"
fi

BUILT=0
if command -v cmake >/dev/null 2>&1; then
  GENERATOR=Ninja
  command -v ninja >/dev/null 2>&1 || GENERATOR="Unix Makefiles"
  say "configuring $BUILD/ ($GENERATOR, Release, SIGLITE_WITH_CUDA=ON, sm_90)"
  rc=0
  limited 120 "$WORK/configure.out" cmake -S . -B "$BUILD" -G "$GENERATOR" -DCMAKE_BUILD_TYPE=Release \
    -DSIGLITE_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 ${NVCC:+-DCMAKE_CUDA_COMPILER="$NVCC"} \
    -DSIGLITE_BUILD_BENCH=ON -DSIGLITE_BUILD_TESTS=ON -DSIGLITE_BUILD_SAMPLES=ON \
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "${PREFIX_ARGS[@]}" || rc=$?
  if ((rc != 0)); then
    # CMake's own words for what it could not find.
    found=$(cat "$WORK/configure.out" "$WORK/configure.out.err" |
      grep -E 'Could NOT find|Could not find a package|provided by "|No CMAKE_CUDA_COMPILER|REQUIRED|not found|Error' |
      head -n 8 | tr '\n' ' ' | cut -c1-900) || true
    say "configure failed: $found"
    if [[ -z $found || $rc == 12[45] || $rc == 137 ]]; then found=$(why "$WORK/configure.out" "$rc"); fi
    emit "{\"figure\":\"build\",\"step\":\"configure\",\"error\":$(jstr "configure failed: $found")}"
  else
    say "building siglite_tests siglite-bench siglite-train with -j$(nproc) (see $LOG)"
    t0=$(date +%s)
    limited 240 "$WORK/build.out" cmake --build "$BUILD" -j"$(nproc)" --target siglite_tests siglite-bench \
      siglite-train || rc=$?
    if ((rc != 0)); then
      errs=$(grep -hE 'error|Error' "$WORK/build.out" "$WORK/build.out.err" | head -n 6 | tr '\n' ' ' |
        cut -c1-900) || true
      say "build failed: $errs"
      if [[ -z $errs || $rc == 12[45] || $rc == 137 ]]; then errs=$(why "$WORK/build.out" "$rc"); fi
      emit "{\"figure\":\"build\",\"step\":\"build\",\"seconds\":$(($(date +%s) - t0)),\"error\":$(jstr \
"build failed: $errs")}"
    else
      BUILT=1
      emit "{\"figure\":\"build\",\"seconds\":$(($(date +%s) - t0)),\"targets\":[\"siglite_tests\",\"siglite-bench\",\
\"siglite-train\"]}"
    fi
  fi
else
  emit "{\"figure\":\"build\",\"error\":\"no cmake on PATH\"}"
fi
say "build done: $([[ $BUILT == 1 ]] && echo yes || echo no)"

# ---------------------------------------------------------------------------------------------------------------
# c. The tests

run_tests() {  # FIGURE SELECTION CAP
  local figure=$1 selection=$2 cap=$3 out=$WORK/tests-${1// /_}.out rc=0
  if ((!BUILT)); then
    emit "{\"figure\":$(jstr "$figure"),\"error\":\"not run: the build failed\"}"
    return
  fi
  say "c. $TESTS \"$selection\""
  limited "$cap" "$out" "$TESTS" "$selection" || rc=$?
  if ((rc == 125)); then
    emit "{\"figure\":$(jstr "$figure"),\"error\":$(jstr "$(why "$out" 125)")}"
  elif ((HAVE_PY)); then
    cat "$out.err" >>"$out"
    emit "$(python3 "$JSONPY" tests "$figure" "$selection" "$out" "$rc")"
  else
    emit "{\"figure\":$(jstr "$figure"),\"exit\":$rc,\"summary\":$(jstr "$(tail -n 3 "$out")")}"
  fi
}
if want tests; then
  run_tests "cuda tests" "[cuda]" 90
  run_tests "op table on every device" "[ops]~[gradcheck]~[golden]" 90
fi

# ---------------------------------------------------------------------------------------------------------------
# d. siglite against PyTorch

# side_siglite OUT CAP ARGS...: runs siglite-bench; prints the side's state ("ok" or why it has no figure).
side_siglite() {
  local out=$1 cap=$2 rc=0
  shift 2
  if ((!BUILT)); then echo "not run: the build failed"; return; fi
  limited "$cap" "$out" "$BENCH" "$@" --device cuda || rc=$?
  if ((rc == 0)); then echo ok; else why "$out" "$rc"; fi
}
side_torch() {
  local out=$1 cap=$2 rc=0
  shift 2
  if ((!HAVE_TORCH)); then echo "no torch"; return; fi
  limited "$cap" "$out" python3 bench/torch_siglip.py "$@" --device cuda || rc=$?
  if ((rc == 0)); then echo ok; else why "$out" "$rc"; fi
}
compose() {  # FIGURE MODE NOTE S_OUT S_STATE T_OUT T_STATE
  if ((HAVE_PY)); then
    emit "$(python3 "$JSONPY" pair "$@")"
  else
    emit "{\"figure\":$(jstr "$1"),\"siglite\":$(tail -n 1 "$4" 2>/dev/null | grep '^{' || jstr "$5"),\"pytorch\":\
$(jstr "$7")}"
  fi
}

# model_figure MODE PRESET BATCH PRECISION SIGLITE_CAP TORCH_CAP
model_figure() {
  local mode=$1 preset=$2 batch=$3 prec=$4 scap=$5 tcap=$6
  local figure="$mode $preset batch $batch $prec" tag=$mode-$preset-$batch-$prec
  local init=$WORK/init-$mode-$preset-$batch s_state t_state save=()
  say "d. $figure"
  if [[ ! -f $init/config.json || ! -f $init/batch.safetensors ]]; then
    rm -rf "$init"
    mkdir -p "$init"
    save=(--save-init "$init")
  fi
  if [[ $prec == bf16 ]]; then
    s_state="not implemented"
  else
    s_state=$(side_siglite "$WORK/$tag.siglite" "$scap" "$mode" --preset "$preset" --batch "$batch" \
      --steps "$STEPS" --warmup "$WARMUP" --precision "$prec" "${save[@]}")
  fi
  if [[ -f $init/config.json && -f $init/batch.safetensors ]]; then
    t_state=$(side_torch "$WORK/$tag.torch" "$tcap" "$mode" --init "$init" --preset "$preset" --model "$TORCH_MODEL" \
      --steps "$STEPS" --warmup "$WARMUP" --precision "$prec")
  elif ((HAVE_TORCH)); then
    t_state="not run: no initial weights (siglite-bench $mode --save-init did not write them)"
  else
    t_state="no torch"
  fi
  compose "$figure" "$mode" "" "$WORK/$tag.siglite" "$s_state" "$WORK/$tag.torch" "$t_state"
}

# loss_figure N PRECISION STEPS SIGLITE_CAP: the median of STEPS calls, the first of which sets up cuBLAS (which
# matters at the smallest n alone).
loss_figure() {
  local n=$1 prec=$2 steps=$3 scap=$4 figure="loss n $1 d 768 $2" tag=loss-$1-$2 s_state t_state
  say "d. $figure"
  s_state=$(side_siglite "$WORK/$tag.siglite" "$scap" loss --n "$n" --d 768 --tile "$LOSS_TILE" --steps "$steps" \
    --precision "$prec")
  t_state=$(side_torch "$WORK/$tag.torch" 60 loss --n "$n" --d 768 --steps "$steps" --precision "$prec")
  compose "$figure" loss "siglite: the tiled loss, tile $LOSS_TILE; PyTorch: the naive loss (n x n logits)" \
    "$WORK/$tag.siglite" "$s_state" "$WORK/$tag.torch" "$t_state"
}

if want tiny; then
  for prec in fp32 tf32 bf16; do model_figure train bench-tiny 1024 "$prec" 60 90; done
fi
if want b16; then
  for prec in fp32 tf32 bf16; do model_figure train b16 256 "$prec" 90 120; done
fi
if want infer; then
  for prec in fp32 tf32 bf16; do model_figure infer b16 256 "$prec" 60 90; done
fi
if want loss; then
  loss_figure 32768 fp32 3 60
  loss_figure 262144 fp32 1 90
  loss_figure 262144 tf32 1 60
  loss_figure 1048576 tf32 1 150
fi

say "done in $(elapsed) s, $ERRORS line(s) with an error"
emit "{\"figure\":\"summary\",\"seconds\":$(elapsed),\"lines_with_error\":$ERRORS,\"limit_seconds\":$BUDGET}"
