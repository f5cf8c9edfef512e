#!/usr/bin/env bash
# The layering rules of docs/design.md, as greps over the sources: no file outside backends/ names the CPU
# backend (its namespace or its types), and no header under include/siglite/ includes one under
# backends/cpu/ (the umbrella registers the CPU through backends/cpu.hpp).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
code=(--include='*.hpp' --include='*.cpp' --include='*.cuh' --include='*.cu' --include='*.h')
if grep -rnE '\bcpu::|HostAllocator|PackedWeights|CpuAllocator' "${code[@]}" include samples tests bench; then
  echo "check_layering: the lines above name the CPU backend outside backends/" >&2
  status=1
fi
if grep -rnE '#include.*backends/cpu/' include; then
  echo "check_layering: the lines above include the CPU backend from include/siglite/" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "check_layering: passed"
exit "$status"
