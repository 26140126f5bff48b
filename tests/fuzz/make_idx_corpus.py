#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_idx into corpus/idx/: small valid IDX files,
raw and gzip, and near-valid ones (truncated, trailing bytes, wrong magic,
zero and huge dimensions, concatenated gzip members, corrupt CRC, one that
inflates past 16 MiB).
Deterministic (gzip mtime 0), so rerunning it changes nothing.
Usage: tests/fuzz/make_idx_corpus.py"""
import gzip
import pathlib
import struct

out = pathlib.Path(__file__).resolve().parent / "corpus" / "idx"
out.mkdir(parents=True, exist_ok=True)


def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


labels = idx(0x801, [10], [i % 10 for i in range(10)])
images = idx(0x803, [2, 4, 4], [(i * 37) % 256 for i in range(32)])
seeds = {
    "labels-raw": labels,
    "images-raw": images,
    "rank2-raw": idx(0x802, [3, 5], range(15)),
    "labels-gz": gz(labels),
    "images-gz": gz(images),
    "two-members-gz": gz(images[:9]) + gz(images[9:]),
    "truncated-raw": images[:-3],
    "trailing-raw": images + b"\0\0",
    "truncated-gz": gz(images)[:-10],
    "trailing-gz": gz(images + b"\1"),
    "bad-crc-gz": (lambda b: b[:-8] + bytes([b[-8] ^ 0xFF]) + b[-7:])(gz(images)),
    "floats-raw": idx(0xD01, [1], [0, 0, 0x80, 0x3F]),
    "zero-dim-raw": idx(0x803, [1, 0, 4], []),
    "huge-dims-raw": idx(0x803, [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], []),
    "liar-gz": gz(idx(0x803, [2000000, 28, 28], range(100))),
    "html": b"<!DOCTYPE html><html>404</html>",
    # 20 MB of labels in 20 KB: past read_growing's 16 MiB first chunk, so the
    # fuzzer starts from a file that takes the buffer-growing path.
    "big-gz": gz(idx(0x801, [20_000_000], bytes(20_000_000))),
}
for name, data in seeds.items():
    (out / name).write_bytes(data)
print(f"wrote {len(seeds)} files to {out}")
