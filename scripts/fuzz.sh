#!/usr/bin/env bash
# Builds one libFuzzer target (clang, ASan + UBSan, LOOM_FUZZ=ON) in build-fuzz/
# and runs it for SECONDS seconds on one core.
#
# Usage: scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]
#   TARGET: idx | model | catalog | image   (or fuzz_idx, fuzz_model, ...)
#   e.g.    scripts/fuzz.sh idx 600
#
# Seeds come from tests/fuzz/corpus/<target>/ (read only); the corpus the run
# grows lives in build-fuzz/corpus/<target>/ and is kept between runs. A crash,
# leak, timeout or out-of-memory stops the run, writes the input that caused it
# to build-fuzz/artifacts/<target>/ and makes this script fail; reproduce with
#   build-fuzz/tests/fuzz/fuzz_<target> build-fuzz/artifacts/<target>/<file>
# Needs clang++ (Debian: clang, libclang-rt-dev) and libomp-dev.
# The build directory can be changed with LOOM_FUZZ_BUILD_DIR.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if (($# < 2)); then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
target=${1#fuzz_}
seconds=$2
shift 2

# -max_len: the largest input tried. -rss_limit_mb: the memory one input may
# cost; libFuzzer also refuses any single malloc above it, so a loader that
# trusts a size field fails here. Chosen from each loader's own limits:
case "$target" in
  idx)
    # 64 KiB reaches every path of the parser: a gzip file of 16 KiB or more may
    # declare past the 16 MiB first chunk of read_growing (deflate's 1032:1 bound),
    # and 64 KiB inflates to at most 66 MiB: no single allocation may pass 128 MB.
    # The process as a whole gets 1 GB, as ASan keeps up to 256 MB of freed memory
    # in quarantine.
    limits=(-max_len=65536 -malloc_limit_mb=128 -rss_limit_mb=1024 -timeout=10)
    ;;
  model)
    # Model files are CRC-checked and decoded from memory; every count and size
    # is checked against the bytes that remain, and weights cannot outnumber
    # the file's bytes / 4. The seeds are 0.6-1.5 KB, so 16 KiB leaves room to
    # grow; nothing decoded from 16 KiB may allocate more than 64 MB.
    limits=(-max_len=16384 -malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10)
    ;;
  catalog)
    # Catalog files are CRC-checked and decoded from memory like model files;
    # every count is checked against the bytes that remain, so nothing decoded
    # from 64 KiB may allocate more than 64 MB (the HNSW graph of a decoded
    # catalog included: its items cannot outnumber the file's bytes / 12).
    limits=(-max_len=65536 -malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10)
    ;;
  image)
    # decode_image admits up to 2^26 pixels (8192 x 8192) of up to 4 channels:
    # stb_image then legitimately allocates the 256 MB output, and for HDR
    # files a float buffer of three channels (768 MB) first. Anything above
    # that is a bug; so is a file that takes more than 30 s.
    limits=(-max_len=65536 -malloc_limit_mb=1100 -rss_limit_mb=2560 -timeout=30)
    ;;
  *)
    echo "fuzz.sh: unknown target '$target'; known: idx, model, catalog, image" >&2
    exit 2
    ;;
esac

build=${LOOM_FUZZ_BUILD_DIR:-build-fuzz}
echo "==> fuzz: building fuzz_$target in $build/ (clang, -O1 -g, ASan + UBSan + libFuzzer)"
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DLOOM_FUZZ=ON -DLOOM_BUILD_TESTS=OFF -DLOOM_BUILD_EXAMPLES=OFF -DLOOM_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target "fuzz_$target"

corpus="$build/corpus/$target"
artifacts="$build/artifacts/$target/"
mkdir -p "$corpus" "$artifacts"
echo "==> fuzz: running fuzz_$target for $seconds s (seeds: tests/fuzz/corpus/$target, corpus: $corpus)"
# One process, one worker: the machine's cores are shared. ASan fills new
# allocations (up to 1 MiB) with a byte pattern, so a read of uninitialised
# memory behaves the same on every run instead of depending on heap garbage.
export ASAN_OPTIONS="max_malloc_fill_size=1048576${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
"$build/tests/fuzz/fuzz_$target" "$corpus" "tests/fuzz/corpus/$target" \
  -max_total_time="$seconds" "${limits[@]}" -artifact_prefix="$artifacts" -print_final_stats=1 "$@"
