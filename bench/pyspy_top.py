"""The top of py-spy's sampled profiles of the API's gunicorn workers (`BENCH_PYSPY=1 make
bench`): which functions the web process spends its CPU in while scenario A runs, as in a
production process (no tracing overhead, unlike cProfile).

`record(pids, seconds, out_dir)` samples each worker (`py-spy record --format raw --gil`: only
the thread holding the GIL, so waits on PostgreSQL, Redis or the PSP are not counted);
`summary(files)` reads the collapsed stacks and lists the functions with the most samples on
top of the stack (self) and, for our own code, anywhere in it (inclusive), as shares of all
samples."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def workers_of(master_pid: int) -> list[int]:
    """The children of a gunicorn master, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            children.append(int(stat.parent.name))
    return sorted(children)


def record(pids: list[int], seconds: float, out_dir: Path) -> list[subprocess.Popen]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--gil",  # only the thread holding the GIL: Python's CPU, not its waits
                "--output",
                str(out_dir / f"pyspy-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def _frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (package/module.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/apps/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/apps/":
                path = "apps/" + path
            break
    return f"{name} ({path})"


def summary(files: list[Path], *, top: int = 25, only: str = "") -> str:
    """`only`: count only the stacks with a frame containing it (e.g. the payment endpoint's
    view, leaving out the load generator's untimed tokenization)."""
    own, anywhere = Counter(), Counter()
    total = 0
    for file in files:
        for line in file.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")]
            frames = [f for f in frames if not f.startswith("thread ")]
            if not frames or (only and not any(only in f for f in frames)):
                continue
            total += n
            own[frames[-1]] += n
            for frame in set(frames):
                anywhere[frame] += n
    if not total:
        return "py-spy: no samples (was the scenario running?)\n"
    scope = f", stacks through {only}" if only else ""
    lines = [
        f"py-spy, API workers during scenario A: {total} samples holding the GIL{scope}",
        "",
        "self:",
    ]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive, our code (apps/):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in anywhere.most_common() if "(apps/" in f][:top]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # python bench/pyspy_top.py [--only FRAME] bench/results/pyspy-*.txt
    args = sys.argv[1:]
    only = args[args.index("--only") + 1] if "--only" in args else ""
    paths = [Path(a) for a in args if a.endswith(".txt")]
    print(summary(paths, only=only))
