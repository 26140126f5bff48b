#!/usr/bin/env bash
# Downloads Fashion-MNIST into data/fashion-mnist/ and checks every file's MD5,
# for machines without the Debian package (apt-get install dataset-fashion-mnist).
#
# Usage: data/fetch.sh [--check] [DIR]
#   DIR       where the files go (default: fashion-mnist/ next to this script)
#   --check   only verify the files already in DIR (raw or .gz); download nothing
# Environment:
#   FASHION_MNIST_URL   base address to download from instead of Zalando's
#                       (a mirror, or file:///some/dir with curl)
set -euo pipefail

base_url=${FASHION_MNIST_URL:-http://fashion-mnist.s3-website.eu-central-1.amazonaws.com}
names=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

# MD5 of each .gz as Zalando publishes it (README of github.com/zalandoresearch/fashion-mnist).
published_gz_md5() {
  case $1 in
    train-images-idx3-ubyte) echo 8d4fb7e6c68d591d4c3dfef9ec88bf0d ;;
    train-labels-idx1-ubyte) echo 25c81989df183df01b3e8a0aad5dffbe ;;
    t10k-images-idx3-ubyte) echo bef4ecab320f06d8554ea6380940ec79 ;;
    t10k-labels-idx1-ubyte) echo bb300cfdad3c16e7a12a480ee83cd310 ;;
  esac
}

# MD5 of the decompressed IDX file. Needed because copies of the same data differ
# as .gz: the Debian package keeps Zalando's deflate stream but rewrites the gzip
# header (no file name, a 2020 time stamp), so its .gz checksums are not the
# published ones although every byte of data is.
idx_md5() {
  case $1 in
    train-images-idx3-ubyte) echo f4a8712d7a061bf5bd6d2ca38dc4d50a ;;
    train-labels-idx1-ubyte) echo 9018921c3c673c538a1fc5bad174d6f9 ;;
    t10k-images-idx3-ubyte) echo 8181f5470baa50b63fa0f6fddb340f0a ;;
    t10k-labels-idx1-ubyte) echo 15d484375f8d13e6eb1aabb0c3f46965 ;;
  esac
}

usage() { sed -n '5,11s/^# \{0,1\}//p' "$0"; }

check_only=false
dest=
for arg in "$@"; do
  case $arg in
    --check) check_only=true ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "fetch.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *)
      if [[ -n $dest ]]; then echo "fetch.sh: one directory only (got $dest and $arg)" >&2; exit 2; fi
      dest=$arg ;;
  esac
done
dest=${dest:-$(cd "$(dirname "$0")" && pwd)/fashion-mnist}

# MD5 of standard input (md5sum on Linux, md5 on macOS and the BSDs).
md5_of() {
  if command -v md5sum > /dev/null; then md5sum | cut -d' ' -f1
  elif command -v md5 > /dev/null; then md5 -q
  else echo "fetch.sh: need md5sum or md5 to verify the files" >&2; exit 1
  fi
}

# verify FILE NAME: succeeds when FILE holds the data of NAME, raw or gzipped.
# Prints which checksum matched, or why none did.
verify() {
  local file=$1 name=$2 gz_sum sum
  if [[ $file == *.gz || $file == *.gz.part ]]; then
    gz_sum=$(md5_of < "$file")
    if [[ $gz_sum == "$(published_gz_md5 "$name")" ]]; then echo "published .gz MD5 $gz_sum"; return 0; fi
    # Other gzip headers around the same data: judge by the contents.
    if ! sum=$(set -o pipefail; gzip -dc < "$file" 2> /dev/null | md5_of); then
      echo "not a valid gzip file (MD5 $gz_sum, published $(published_gz_md5 "$name"))"
      return 1
    fi
    if [[ $sum == "$(idx_md5 "$name")" ]]; then echo "contents MD5 $sum"; return 0; fi
    echo "MD5 $gz_sum is not the published $(published_gz_md5 "$name"), nor are its contents (MD5 $sum, expected $(idx_md5 "$name"))"
    return 1
  fi
  sum=$(md5_of < "$file")
  if [[ $sum == "$(idx_md5 "$name")" ]]; then echo "contents MD5 $sum"; return 0; fi
  echo "MD5 $sum, expected $(idx_md5 "$name")"
  return 1
}

download() {
  local url=$1 out=$2
  if command -v curl > /dev/null; then curl -fsSL --retry 3 -o "$out" "$url"
  elif command -v wget > /dev/null; then wget -q --tries=3 -O "$out" "$url"
  else echo "fetch.sh: need curl or wget to download" >&2; return 1
  fi
}

mkdir -p "$dest"
failed=0
for name in "${names[@]}"; do
  gz=$dest/$name.gz
  if $check_only; then
    file=$gz
    [[ -e $file ]] || file=$dest/$name
    if [[ ! -e $file ]]; then echo "MISSING $dest/$name(.gz)"; failed=1; continue; fi
    if result=$(verify "$file" "$name"); then echo "ok      $file ($result)"
    else echo "BAD     $file: $result"; failed=1
    fi
    continue
  fi

  if [[ -e $gz ]]; then
    if result=$(verify "$gz" "$name"); then echo "ok      $gz (already there; $result)"; continue; fi
    echo "bad     $gz ($result); downloading it again"
  fi
  echo "get     $base_url/$name.gz"
  if ! download "$base_url/$name.gz" "$gz.part"; then
    echo "FAILED  to download $base_url/$name.gz" >&2
    rm -f "$gz.part"; failed=1; continue
  fi
  if result=$(verify "$gz.part" "$name"); then
    mv "$gz.part" "$gz"
    echo "ok      $gz ($result)"
  else
    echo "BAD     $base_url/$name.gz: $result; deleted" >&2
    rm -f "$gz.part"; failed=1
  fi
done

if ((failed)); then
  echo "Some files are missing or damaged (see above)." >&2
  exit 1
fi
$check_only || echo "Fashion-MNIST is in $dest. loom looks in data/fashion-mnist when run from the repository root; elsewhere, set LOOM_DATA_DIR=$dest."
