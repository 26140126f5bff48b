"""What bench/compare_pytorch.py and bench/suite.py share: running the children,
the BLAS check, loom_bench's JSON, tables and the JSON report.

Each framework runs in its own child process, one after the other (never at
once), with the same thread count: the child's flags say it, and the
environment too (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS), so
neither OpenMP nor the BLAS starts more threads than asked for.

Every child also gets the malloc settings loom applies to itself
(include/loom/freed_memory.hpp) through GLIBC_TUNABLES: freed blocks under
32 MB stay in the heaps for reuse. PyTorch's CPU allocator does not cache,
and on a machine where page faults are dear (this one's virtual machine)
glibc's defaults made PyTorch 3-4x slower: its training step of the suite's
resnet took 223 ms with them and 60 ms with these settings, the seed
model's 26 ms and 7 ms (suite_pytorch.py, one run after the other). A
GLIBC_TUNABLES of the caller's that sets malloc is left as it is.

PyTorch's children also run on tcmalloc (libtcmalloc-minimal4, preloaded),
as PyTorch's CPU performance guide advises: glibc maps every block above
32 MB afresh whatever its settings, and PyTorch's batch-256 inference of the
vgg model ran at 2,208 images/s on glibc, 5,482 on tcmalloc (jemalloc's
defaults: 747). loom gains nothing from it (5,862 and 5,792) and runs as its
users run it. Without tcmalloc installed (scripts/install-bench-deps.sh)
PyTorch runs on glibc and the report says so.
"""
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROG = os.path.basename(sys.argv[0]).removesuffix(".py") if sys.argv and sys.argv[0] else "bench"

# The PyTorch layouts: PyTorch's default, and the one oneDNN often prefers.
LAYOUTS = ("nchw", "channels_last")
PRECISIONS = ("fp32", "bf16")  # PyTorch's arithmetic: float32 as loom, or bfloat16 autocast


def die(message, status=2):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(status)


def check_output_files(**files):
    """Dies, before any measurement, when an output file given by an option
    (option=path; None: not given) could not be written at the end: its
    directory is missing or not writable, or the path is a directory."""
    for option, path in files.items():
        if not path:
            continue
        flag = "--" + option.replace("_", "-")
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            die(f"{flag} {path}: is a directory")
        if not os.path.isdir(folder):
            die(f"{flag} {path}: the directory {folder} does not exist")
        if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            die(f"{flag} {path}: not writable")


# loom's own settings (freed_memory.hpp: kKeptBlockBytes, kKeptTopBytes), as glibc tunables.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728"


def child_tunables():
    """The GLIBC_TUNABLES every child gets: the caller's, with loom's malloc settings unless it sets malloc."""
    own = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc" in own:
        return own
    return f"{own}:{MALLOC_TUNABLES}" if own else MALLOC_TUNABLES


TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def pytorch_allocator():
    """The allocator PyTorch's children run on: tcmalloc's path, or None (glibc's malloc)."""
    return TCMALLOC if os.path.exists(TCMALLOC) else None


def thread_env(threads, pytorch=False):
    """The environment of a child that may use `threads` threads (a PyTorch child: on tcmalloc if installed)."""
    n = str(threads)
    env = dict(os.environ, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
               GLIBC_TUNABLES=child_tunables())
    if pytorch and pytorch_allocator():
        env["LD_PRELOAD"] = " ".join(filter(None, [pytorch_allocator(), os.environ.get("LD_PRELOAD")]))
    return env


def run_child(name, cmd, threads, pytorch=False):
    """Runs cmd with its stderr passed through; returns (its last JSON line, seconds, peak RSS in MB of that child)."""
    print(f"==> {name}: {' '.join(shlex.quote(c) for c in cmd)}", file=sys.stderr, flush=True)
    with tempfile.TemporaryFile(mode="w+") as out:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=None, env=thread_env(threads, pytorch))
        except OSError as e:
            die(f"cannot start {name}: {e}")
        # wait4 on this child alone: ru_maxrss is its own peak, not the largest of all children so far.
        _, status, usage = os.wait4(proc.pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    if returncode != 0:
        sys.stderr.write(text)
        die(f"{name} failed with exit status {returncode}")
    lines = [l for l in text.splitlines() if l.startswith("{")]
    if not lines:
        sys.stderr.write(text)
        die(f"{name} printed no JSON line")
    return json.loads(lines[-1]), seconds, usage.ru_maxrss / 1024.0  # Linux: kilobytes


# ---- which BLAS PyTorch uses ------------------------------------------------

def probe_torch(threads):
    """bench/torch_env.py in a child of this interpreter: PyTorch's BLAS, oneDNN and threads."""
    info, _, _ = run_child("pytorch probe", [sys.executable, os.path.join(HERE, "torch_env.py")], threads, pytorch=True)
    return info


def blas_summary(info):
    sgemm = info.get("blas_sgemm_library") or ", ".join(info.get("blas_libraries") or []) or "none found"
    onednn = info.get("onednn_version") or "unknown version"
    return (f"PyTorch {info.get('torch_version')}: BLAS {info.get('blas')} ({sgemm}; built with "
            f"BLAS_INFO={info.get('build_blas_info')}), oneDNN {onednn} "
            f"({'available' if info.get('mkldnn_available') else 'NOT available'}); "
            f"allocator {pytorch_allocator() or 'glibc malloc (tcmalloc not installed: scripts/install-bench-deps.sh)'}")


def check_blas(info, allow_reference):
    """Prints which BLAS PyTorch loaded; exits 2 when it is the reference BLAS, unless allowed."""
    print(f"==> {blas_summary(info)}", file=sys.stderr, flush=True)
    if info.get("blas") != "reference":
        return
    message = ("PyTorch loaded the unoptimised reference BLAS (" + str(info.get("blas_sgemm_library")) + "): "
               "every dense layer would run at a few GFLOP/s and the comparison would flatter loom. "
               "Install an optimised one (scripts/install-bench-deps.sh installs libopenblas0-openmp, and Debian "
               "points libblas.so.3 at it), or pass --allow-reference-blas to compare anyway.")
    if allow_reference:
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    else:
        die("refusing to compare: " + message)


def add_common_args(ap, default_threads=2):
    ap.add_argument("--threads", type=int, default=default_threads,
                    help=f"threads for both frameworks (default {default_threads})")
    ap.add_argument("--allow-reference-blas", action="store_true",
                    help="compare even when PyTorch runs on the reference BLAS (refused otherwise)")
    ap.add_argument("--json-out", help="also write the JSON result to this file")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    ap.add_argument("--check", action="store_true", help="exit with status 1 when a target (not n/a) fails")


# ---- the machine and the checkout -------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_state():
    """The commit measured, '+dirty' when tracked files differ from it (None outside a git checkout)."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def machine():
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}


CORE_PROBE = os.path.join(ROOT, "build", "bench", "loom_core_probe")


def core_probe():
    """loom_core_probe's JSON: the round trip of a cache line between the first two CPUs and each one's speed
    (bench/core_probe.cpp tells why they matter on a shared host); None when it is not built or fails."""
    if not os.access(CORE_PROBE, os.X_OK):
        return None
    try:
        out = subprocess.run([CORE_PROBE], capture_output=True, text=True, timeout=60, check=True).stdout
        return json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def host_state():
    """The shared host at this moment: its load average and the cores' probe."""
    return {"loadavg": list(os.getloadavg()), "cores": core_probe()}


def host_summary(before, after):
    """One line on the host before and after (host_state()): load, and the cores' round trip and speeds."""
    def cores(state):
        c = state["cores"]
        if not c:
            return "not probed (build loom_core_probe)"
        trip = "-" if c["round_trip_ns"] is None else f"{c['round_trip_ns']:.0f} ns round trip"
        return trip + ", " + "/".join(f"{g:.0f}" for g in c["core_gflops"]) + " GFLOP/s per core"
    return (f"load average {before['loadavg'][0]:.2f} before, {after['loadavg'][0]:.2f} after; "
            f"cores {cores(before)} before, {cores(after)} after")


def executable(path, target):
    """path, or a usage error telling how to build it."""
    if not os.access(path, os.X_OK):
        die(f"{path} is not an executable; build it with\n"
            f"  cmake -S {ROOT} -B build && cmake --build build -j2 --target {target}")
    return path


# ---- rounds ------------------------------------------------------------------

def median_of_rounds(rounds):
    """Rounds of a comparison as one: each number the median over the rounds (so a ratio is the median of the
    rounds' ratios, each taken between runs next to each other in time, not the ratio of two medians), each
    other value the first round's; every ratio also keeps its rounds' values (ratio_by_round)."""
    first = rounds[0]
    if isinstance(first, dict):
        out = {k: median_of_rounds([r.get(k) for r in rounds]) for k in first}
        if "ratio" in first and len(rounds) > 1:
            out["ratio_by_round"] = [r["ratio"] for r in rounds]
        return out
    if all(v == first for v in rounds):  # counts (params, batch) keep their type
        return first
    if isinstance(first, (int, float)) and not isinstance(first, bool) and all(
            isinstance(v, (int, float)) for v in rounds):
        return statistics.median(rounds)
    return first


# ---- formatting --------------------------------------------------------------

def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def with_range(value, by_round, spec):
    """value formatted, with the range of its rounds' values in brackets when there were several."""
    cell = fmt(value, spec)
    seen = [v for v in by_round or [] if v is not None]
    return f"{cell} ({min(seen):{spec}}-{max(seen):{spec}})" if len(seen) > 1 else cell


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def ratio(x, y):
    return None if x is None or not y else x / y


def text_table(header, rows, left=(0,)):
    """Aligned columns; the columns in `left` flush left, the others right."""
    table = [header] + rows
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for k, row in enumerate(table):
        cells = [c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header, rows, left=(0,)):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i in left else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def table(header, rows, markdown, left=(0,)):
    return (markdown_table if markdown else text_table)(header, rows, left)


def report_head(kind, started, before, after, threads):
    """The first keys of a report: what ran, when, where (the host as host_state() found it before and after),
    on which commit."""
    return {"kind": kind, "date": started.isoformat(timespec="seconds"),
            "command": " ".join(shlex.quote(c) for c in [sys.executable] + sys.argv),
            "machine": dict(machine(), loadavg_before=before["loadavg"], cores_before=before["cores"],
                            cores_after=after["cores"]),
            "loom_commit": git_state(), "threads": threads,
            "child_glibc_tunables": child_tunables(), "pytorch_allocator": pytorch_allocator() or "glibc malloc"}


def finish(report, json_out, check):
    """Prints the report as one JSON line (and writes it to json_out); the exit status: 1 when check and a
    target failed, else 0."""
    line = json.dumps(report, separators=(", ", ": "))
    if json_out:  # first, so the file is there even when stdout is closed early (| head)
        with open(json_out, "w") as f:
            f.write(line + "\n")
    print(line, flush=True)
    return 1 if check and any(t["pass"] is False for t in report["targets"].values()) else 0


# ---- loom_bench's JSON -------------------------------------------------------

TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def bench_results(path):
    """loom_bench JSON -> (context, {run name without /real_time: entry}); the median when repeated."""
    with open(path) as f:
        doc = json.load(f)
    medians, runs = {}, {}
    for b in doc.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        name = name[: -len("/real_time")] if name.endswith("/real_time") else name
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        elif "error_occurred" not in b or not b["error_occurred"]:
            runs.setdefault(name, []).append(b)
    out = {}
    for name, entries in runs.items():
        entries.sort(key=lambda e: e["real_time"])
        out[name] = entries[len(entries) // 2]
    out.update(medians)
    return doc.get("context", {}), out


def micros(entry):
    return entry["real_time"] * TO_US[entry.get("time_unit", "ns")]


def gemm_peak(res, path):
    """(name, GFLOP/s) of the fastest gemm/* (loom's T-thread product: the GEMM peak of the run)."""
    threaded = {n: e for n, e in res.items() if n.startswith("gemm/")}
    if not threaded:
        die(f"{path} has no gemm/* results; run loom_bench without a filter that excludes them")
    return max(((n, e["GFLOP/s"]) for n, e in threaded.items()), key=lambda x: x[1])
