#!/usr/bin/python3
"""Which BLAS and oneDNN this PyTorch runs on, and its thread set-up: imported by the PyTorch children.

Debian's python3-torch is built with BLAS_INFO=generic: it calls whatever
libblas.so.3 the system's alternatives point to. With only libblas3 installed
that is the unoptimised reference BLAS, and every dense layer runs at a few
GFLOP/s. So the children report the BLAS they actually loaded, read from
/proc/self/maps, and which of them provides the sgemm_ that libtorch_cpu
calls (dladdr: with both a reference and an optimised BLAS mapped, only
that one counts), and the comparison scripts (benchlib.check_blas) refuse
to compare against the reference BLAS.

Run as a script, it prints describe() as one JSON line (the scripts' probe):
  /usr/bin/python3 bench/torch_env.py
"""
import contextlib
import ctypes
import json
import os
import re

import torch

# (kind, pattern of the library's real path, which /proc/self/maps shows after symlinks).
BLAS_KINDS = (
    ("openblas", re.compile(r"openblas")),
    ("mkl", re.compile(r"libmkl_")),
    ("blis", re.compile(r"blis")),
    ("atlas", re.compile(r"atlas")),
    ("reference", re.compile(r"/blas/libblas\.so")),  # Debian's libblas3
)


def loaded_libraries(pattern=r"blas|mkl|dnnl|mkldnn|atlas|blis"):
    """Paths of the mapped shared libraries of this process whose path matches pattern, in load order."""
    paths = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/") and re.search(pattern, fields[5]):
                path = fields[5].strip()
                if path not in paths:
                    paths.append(path)
    return paths


def blas_kind(paths):
    """'openblas', 'mkl', 'blis', 'atlas', 'reference' or 'unknown' for the mapped BLAS libraries."""
    for kind, pattern in BLAS_KINDS:
        if any(pattern.search(p) for p in paths):
            return kind
    return "unknown"


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def sgemm_provider():
    """The real path of the library whose sgemm_ libtorch_cpu's lookup finds, or None."""
    try:
        torch_cpu = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        address = ctypes.cast(torch_cpu.sgemm_, ctypes.c_void_p).value
        libc = ctypes.CDLL(None)
        libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        info = _DlInfo()
        if not libc.dladdr(address, ctypes.byref(info)) or not info.dli_fname:
            return None
        return os.path.realpath(info.dli_fname.decode())
    except (OSError, AttributeError):
        return None


def onednn_version(config):
    m = re.search(r"(?:oneDNN|MKL-DNN)\s+v([0-9][0-9.]*)", config)
    return m.group(1) if m else None


def cpu_has_bf16():
    """Whether the CPU multiplies bfloat16 natively (avx512_bf16), where autocast to bfloat16 can pay."""
    try:
        with open("/proc/cpuinfo") as f:
            return re.search(r"\bavx512_bf16\b", f.read()) is not None
    except OSError:
        return False


def arithmetic(precision):
    """The context a forward pass runs in for --precision: bfloat16 autocast ("bf16"), or float32 as written."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision_error(precision):
    """Why --precision cannot run here (a message), or None."""
    if precision == "bf16" and not cpu_has_bf16():
        return "--precision bf16: this CPU has no avx512_bf16; autocast would emulate it, slower than fp32"
    return None


def describe():
    a = torch.randn(64, 64)
    torch.mm(a, a)  # a BLAS call, so a lazily loaded BLAS is mapped too
    config = torch.__config__.show()
    build_blas = re.search(r"BLAS_INFO=([^,\s]+)", config)
    libs = loaded_libraries()
    blas = [p for p in libs if not re.search(r"dnnl|mkldnn|lapack", p)]
    sgemm = sgemm_provider()
    return {
        "torch_version": torch.__version__,
        "blas": blas_kind([sgemm] if sgemm else blas),
        "blas_sgemm_library": sgemm,
        "blas_libraries": blas,
        "build_blas_info": build_blas.group(1) if build_blas else None,
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "onednn_version": onednn_version(config),
        "onednn_libraries": [p for p in libs if re.search(r"dnnl|mkldnn", p)],
        "cpu_avx512_bf16": cpu_has_bf16(),
        "torch_threads": torch.get_num_threads(),
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }


if __name__ == "__main__":
    print(json.dumps(describe()))
