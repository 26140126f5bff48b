#!/usr/bin/env bash
# Installs what is missing, builds loom (Release) into build/ and trains the
# seed example, the Keras Fashion-MNIST CNN, on the real data.
#
# Every argument goes to the example unchanged, e.g.
#   scripts/train.sh                          # the full job: 5 epochs on 60,000 images
#   scripts/train.sh --epochs 1 --limit 2000  # a quick check
#   scripts/train.sh --help                   # the example's flags
#
# Extra CMake configure arguments can be given in LOOM_CMAKE_ARGS, e.g.
#   LOOM_CMAKE_ARGS="-DLOOM_NATIVE=OFF" scripts/train.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> train: checking dependencies"
scripts/install-deps.sh

echo "==> train: configuring a Release build in build/"
# shellcheck disable=SC2086  # LOOM_CMAKE_ARGS is a list of arguments
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${LOOM_CMAKE_ARGS:-}

echo "==> train: building the example (fashion_mnist_cnn)"
cmake --build build --target fashion_mnist_cnn -j "$(nproc)"

echo "==> train: build/examples/fashion_mnist_cnn $*"
exec build/examples/fashion_mnist_cnn "$@"
