#!/usr/bin/env bash
# Installs what is missing, builds loom (Release) with its tests, examples and
# benchmarks into build/, and runs the whole test suite with ctest.
# Exits with ctest's status: 0 only when every test passed.
#
# Extra CMake configure arguments can be given in LOOM_CMAKE_ARGS, e.g.
#   LOOM_CMAKE_ARGS="-DLOOM_NATIVE=OFF" scripts/test.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> test: checking dependencies"
scripts/install-deps.sh

echo "==> test: configuring a Release build in build/"
# shellcheck disable=SC2086  # LOOM_CMAKE_ARGS is a list of arguments
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${LOOM_CMAKE_ARGS:-}

echo "==> test: building everything with $(nproc) jobs"
cmake --build build -j "$(nproc)"

echo "==> test: running the test suite"
status=0
ctest --test-dir build --output-on-failure -j "$(nproc)" || status=$?
if ((status == 0)); then
  echo "==> test: all tests passed"
else
  echo "==> test: ctest failed (exit status $status); see the failures above" >&2
fi
exit "$status"
