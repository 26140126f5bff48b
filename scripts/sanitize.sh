#!/usr/bin/env bash
# The test suite under the sanitizers, as CI runs it after scripts/test.sh:
#   1. AddressSanitizer + UndefinedBehaviorSanitizer (gcc): the whole test
#      suite, built in build-asan/ at -O1 -g1 with assertions on (Eigen's
#      bounds checks included) for any x86-64 (LOOM_NATIVE=OFF, see below);
#      any finding aborts the test that made it.
#   2. ThreadSanitizer (gcc): the concurrency tests ([concurrency]: many
#      threads predicting and evaluating on one model), built in build-tsan/.
# Exits non-zero when a test fails or a sanitizer reports anything.
#
# The tests that train on real data use a tenth of it (LOOM_TEST_DATA_SCALE,
# see tests/test_scale.hpp); set LOOM_TEST_DATA_SCALE=1 to run them whole.
# Skipped: install.find_package_consumer, which builds a separate,
# uninstrumented project against the installed library, and the tests labelled
# mpi (whole programs under mpirun, built only by scripts/test.sh, which runs them).
#
# OpenMP: gcc's libgomp is not built with ThreadSanitizer, so TSan cannot see
# the synchronisation inside its barriers and would report races between
# OpenMP workers that are not there. The TSan run therefore sets
# OMP_NUM_THREADS=1: the concurrency is the test's own std::threads (the case
# the test is about: many callers on one const model), whose every access TSan
# sees, while each call's OpenMP regions stay on the calling thread.
#
# Usage: scripts/sanitize.sh            (about 13 minutes on 2 cores from clean)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
export LOOM_TEST_DATA_SCALE=${LOOM_TEST_DATA_SCALE:-0.1}
jobs=$(nproc)
# Portable code (LOOM_NATIVE=OFF): with -march=native on an AVX-512 machine,
# g++ 12's ASan crashes on its own fake stack frames (detect_stack_use_after_return)
# in test code that does nothing wrong. scripts/test.sh tests the native build;
# this run tests the portable one.
# -g1: line tables only. Reports still name file and line; full debug
# information of Eigen's templates made the build take half as long again.
common=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" -DLOOM_NATIVE=OFF
        -DLOOM_BUILD_TESTS=ON -DLOOM_BUILD_EXAMPLES=OFF -DLOOM_BUILD_BENCH=OFF)

echo "==> sanitize: ASan + UBSan build of the test suite in build-asan/"
cmake -S . -B build-asan "${common[@]}" -DLOOM_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j "$jobs" --target loom_tests

echo "==> sanitize: running the test suite under ASan + UBSan (LOOM_TEST_DATA_SCALE=$LOOM_TEST_DATA_SCALE)"
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE "install|mpi|example"

echo "==> sanitize: TSan build of the concurrency tests in build-tsan/"
cmake -S . -B build-tsan "${common[@]}" -DLOOM_SANITIZE=thread >/dev/null
cmake --build build-tsan -j "$jobs" --target loom_concurrency_tests

echo "==> sanitize: running the concurrency tests under TSan (OMP_NUM_THREADS=1, see above)"
OMP_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp" \
  build-tsan/tests/loom_concurrency_tests --order rand --warn NoAssertions

echo "==> sanitize: no sanitizer findings; $((SECONDS - started)) s in all"
