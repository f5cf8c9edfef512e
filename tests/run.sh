#!/usr/bin/env bash
# Installs what is needed, builds siglite and runs the whole test suite twice: an optimised
# build (with the CUDA backend compiled where nvcc is found; its GPU tests skip without a GPU), and a build with
# AddressSanitizer and UndefinedBehaviorSanitizer. Each runs the suite on the CPU and
# again on the far test device, and the programs on both (tests/programs_on_far.sh). Then the threaded tests run
# under ThreadSanitizer, and every fuzz target (tests/fuzz) for 30 seconds on top of its seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
jobs=$(nproc)  # for compiling; tests run one at a time, each on all cores (OpenMP)

echo "== release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure)

echo "== sanitizer build (ASan + UBSan)"
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSIGLITE_SANITIZE=ON \
      -DSIGLITE_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g"
cmake --build build-sanitize -j "$jobs"
(cd build-sanitize && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure)

echo "== ThreadSanitizer build: the threaded tests (tests/test_threads.cpp)"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSIGLITE_TSAN=ON -DSIGLITE_BUILD_BENCH=OFF \
      -DSIGLITE_BUILD_SAMPLES=OFF -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g"
cmake --build build-tsan -j "$jobs" --target siglite_tsan_tests
# One OpenMP thread a team: GCC's libgomp is not instrumented, so its barriers would look like races. The threads
# under test are the tests' own and the loader's; any race among them fails the run (exit code 66).
OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/siglite_tsan_tests

echo "== fuzz targets (libFuzzer, ASan + UBSan), 30 s each"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ -DSIGLITE_FUZZ=ON \
      -DSIGLITE_BUILD_TESTS=OFF -DSIGLITE_BUILD_SAMPLES=OFF -DSIGLITE_BUILD_BENCH=OFF -DSIGLITE_WITH_CUDA=OFF
cmake --build build-fuzz -j "$jobs"
tests/fuzz/run.sh build-fuzz 30 "$jobs"
