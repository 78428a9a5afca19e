"""Runs a command and reports the peak memory of its whole process tree.

    python -m tools.peak_memory [--every_s 0.5] -- ./run_local.sh --runner flink

Every ``--every_s`` it reads, from ``/proc``, the resident set size of the
command and of every process descended from it (the driver, the Java expansion
service and its workers, the Flink job server or Prism), and keeps the peak of
their sum and of each process.  Kafka and PostgreSQL, started before by
``./run_local.sh start``, are not descendants and are not counted.  The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
import typing

__all__ = ["describe", "main", "proc_stat", "tree_rss"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3, the state,
    onwards), or ``None`` when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The name may hold spaces and parentheses: the fields start after the last ')'.
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def all_proc_stats() -> typing.Iterator[tuple[int, list[str]]]:
    """``(pid, proc_stat(pid))`` of every process still there."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_stat(int(entry))
            if fields is not None:
                yield int(entry), fields


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = collections.defaultdict(list)
    for pid, fields in all_proc_stats():
        tree[int(fields[1])].append(pid)  # field 4: the parent's pid
    return tree


def describe(pid: int) -> str:
    """``python run``, ``java beamline-expansion-service-2.71.0.jar``: the program and
    what it runs (a module, a jar), from the command line; ``?`` when it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    name = os.path.basename(words[0]) if words else "?"
    detail = next((w for w in words[1:] if w.endswith(".jar") or w in ("-m", "run")), "")
    if name.startswith("python") and "-m" in words:
        detail = words[words.index("-m") + 1] if words.index("-m") + 1 < len(words) else ""
    elif name == "java":
        jar = next((w for w in words if w.endswith(".jar")), "")
        detail = os.path.basename(jar) or next((w for w in words if "." in w and "/" not in w), "")
    return f"{name} {detail}".strip()


def tree_rss(root: int) -> dict[int, tuple[str, int]]:
    """pid → (description, resident bytes) for ``root`` and all its descendants."""
    tree, found, todo = _children(), {}, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * _PAGE
        except OSError:
            continue
        found[pid] = (describe(pid), rss)
        todo.extend(tree.get(pid, ()))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.peak_memory",
        description="Run a command; print the peak resident memory of its process tree.",
    )
    parser.add_argument("--every_s", type=float, default=0.5)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    started = time.monotonic()
    child = subprocess.Popen(command)
    peak_total, peak_at, peaks = 0, 0.0, {}
    while child.poll() is None:
        sample = tree_rss(child.pid)
        total = sum(rss for _, rss in sample.values())
        if total > peak_total:
            peak_total, peak_at = total, time.monotonic() - started
        for pid, (name, rss) in sample.items():
            key = f"{name} [{pid}]"
            peaks[key] = max(peaks.get(key, 0), rss)
        time.sleep(args.every_s)
    mib = 1024 * 1024
    print(f"peak memory of the process tree: {peak_total / mib:,.0f} MiB at {peak_at:.0f} s")
    for key, rss in sorted(peaks.items(), key=lambda kv: -kv[1]):
        if rss >= 20 * mib:
            print(f"  {rss / mib:8,.0f} MiB  {key}")
    print(
        json.dumps(
            {
                "exit_code": child.returncode,
                "peak_total_mib": round(peak_total / mib),
                "peak_at_s": round(peak_at),
                "wall_s": round(time.monotonic() - started),
                "processes": {k: round(v / mib) for k, v in peaks.items() if v >= 20 * mib},
            }
        )
    )
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
