#!/usr/bin/env bash
# Installs what the comparisons with PyTorch need (bench/compare_pytorch.py,
# bench/suite.py), on top of loom's own dependencies (scripts/install-deps.sh,
# which does the installing). PyTorch is a benchmark reference only, never a
# dependency of loom, its build or its tests:
#   python3-torch python3-numpy   the reference, run with /usr/bin/python3
#   libopenblas0-openmp           an optimised BLAS for it: Debian's torch is
#                                 built with BLAS_INFO=generic and calls
#                                 whatever libblas.so.3 the alternatives point
#                                 to, the unoptimised reference BLAS when only
#                                 libblas3 is installed. Installing OpenBLAS
#                                 switches the alternative (it has the higher
#                                 priority) unless it was set by hand.
#   libtcmalloc-minimal4          the allocator PyTorch's benchmark children run
#                                 on (bench/benchlib.py): PyTorch's allocator
#                                 does not cache, and on glibc its large blocks
#                                 are mapped afresh on every call.
# Then checks which BLAS PyTorch actually loads (bench/torch_env.py) and
# fails when it is still the reference one.
#
# Usage: scripts/install-bench-deps.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/install-deps.sh" python3-torch python3-numpy libopenblas0-openmp libtcmalloc-minimal4

if ! info="$(/usr/bin/python3 "$here/../bench/torch_env.py")"; then
  echo "install-bench-deps: /usr/bin/python3 cannot import torch" >&2
  exit 1
fi
blas="$(printf '%s\n' "$info" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["blas"])')"
echo "install-bench-deps: PyTorch uses the $blas BLAS"
if [[ "$blas" == reference ]]; then
  echo "install-bench-deps: libblas.so.3 still points to the reference BLAS (set by hand?); as root, run:" >&2
  echo "  update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3" >&2
  exit 1
fi
