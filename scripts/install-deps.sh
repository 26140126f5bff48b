#!/usr/bin/env bash
# Installs the Debian 12 packages loom needs, and only those that are missing.
#
# This is the one place that lists loom's dependencies. Every one is a Debian
# package; nothing is vendored or downloaded from elsewhere:
#   cmake g++                 the build
#   libeigen3-dev             tensors and matrix products
#   zlib1g-dev                reading .gz IDX files
#   libstb-dev                image reading and writing
#   libhnswlib-dev            approximate nearest-neighbour search (HNSW, header-only)
#   libfaiss-dev              approximate search of large catalogs (an inverted file: k-means, lists)
#   libopenmpi-dev openmpi-bin  data-parallel training over MPI (loom::distributed,
#                             LOOM_MPI) and mpirun for its tests; loom builds without them
#   catch2                    the test suite
#   libbenchmark-dev          the benchmarks
#   dataset-fashion-mnist     the real data, in /usr/share/datasets/fashion-mnist
#
# Runs apt-get as root, or through sudo when not root. Touches the network
# (apt-get update) only when something has to be installed, so a second run
# is quick and works offline.
#
# Usage: scripts/install-deps.sh [EXTRA_PACKAGE...]
# (extra packages: for scripts/install-bench-deps.sh, which installs the
# benchmarks' PyTorch reference with it)
set -euo pipefail

packages=(
  cmake
  g++
  libeigen3-dev
  zlib1g-dev
  libstb-dev
  libhnswlib-dev
  libfaiss-dev
  libopenmpi-dev
  openmpi-bin
  catch2
  libbenchmark-dev
  dataset-fashion-mnist
  "$@"
)

installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: dpkg-query not found; this script expects Debian 12 (bookworm)." >&2
  echo "install-deps: install these packages (or their equivalents) by hand: ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: not root and sudo is not available; as root, run:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

for p in "${missing[@]}"; do
  if ! installed "$p"; then
    echo "install-deps: $p is still not installed after apt-get" >&2
    exit 1
  fi
done
echo "install-deps: done"
