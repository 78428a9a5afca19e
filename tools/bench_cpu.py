"""CPU seconds of a measured run's processes, each named by its role (``ROLES``).

Which processes: every descendant of the roots the bench gives, sampled every 0.5 s
from ``/proc``.  The roots are the run's ``python -m run`` (the driver, and what it
starts: a run's own expansion service, Flink's job server, Prism) and, on a Flink
cluster, the cluster's long-lived processes, which work for the run without being
its descendants: the JobManager, the TaskManager, the Python worker pool (its SDK
workers are its children), the expansion service (its Java workers are its
children, one JVM per job) and the job server the cluster's runs submit to.

What counts: utime + stime, the last sample of each process (a pid with its start
time: a reused pid is another process), less what it had used when the run began.
A process that starts and ends within the run counts up to its last sample (its
last ≤ 0.5 s are missed); one that was there before counts only the run's share.
"""

from __future__ import annotations

import collections
import os
import re
import typing

from tools.peak_memory import all_proc_stats, describe

__all__ = ["OTHER", "ROLES", "CpuSampler", "role_of"]

# Role → the pattern of its command line (argv joined by spaces); the first match
# names a process.  A LOOPBACK runner's Python SDK worker runs inside the driver
# (direct, prism, flink), and a local run's Java worker inside its expansion service.
ROLES = (
    ("JobManager", r"org\.apache\.flink\.runtime\.entrypoint\.StandaloneSessionClusterEntrypoint"),
    ("TaskManager", r"org\.apache\.flink\.runtime\.taskexecutor\.TaskManagerRunner"),
    ("job server", r"flink-job-server"),  # Beam's Flink job server; embedded Flink runs in it
    ("Prism", r"(^|/)prism( |$)"),
    ("Java SDK worker", r"ProcessWorkerPool\$Worker|org\.apache\.beam\.fn\.harness\.FnHarness"),
    ("expansion service", r"LoopbackExpansionServer|-m beam_pipeline\.java_services( |$)"),
    ("Python SDK worker", r"apache_beam\.runners\.worker\.sdk_worker|(^|/)boot( |$)"),
    ("Python worker pool", r"-m beam_pipeline\.worker_pool( |$)"),
    ("driver", r"(^| )-m run( |$)"),
)
OTHER = "other"  # a process of the trees no pattern names

_PATTERNS = [(role, re.compile(pattern)) for role, pattern in ROLES]
_TICK = os.sysconf("SC_CLK_TCK")

# A process: its pid and its start time (clock ticks after boot).
_Key = tuple[int, int]


def role_of(command_line: str) -> str:
    """The role of the process whose argv, joined by spaces, is ``command_line``."""
    return next((role for role, pattern in _PATTERNS if pattern.search(command_line)), OTHER)


class CpuSampler:
    """The CPU seconds the processes of some trees use from its creation on.

    ``CpuSampler(roots)`` takes what the trees of ``roots`` (a running cluster's)
    have used so far; ``sample(roots)`` reads every process of the trees of
    ``roots`` again; ``per_process`` and ``per_role`` add up.
    """

    def __init__(self, roots: typing.Iterable[int] = ()):
        table = _table()
        self._before = {(pid, table[pid][1]): table[pid][2] for pid in _tree(table, roots)}
        self._last: dict[_Key, tuple[str, str, int]] = {}  # → role, description, ticks

    def sample(self, roots: typing.Iterable[int]) -> None:
        """Reads utime + stime and the role of every process of the trees of ``roots``."""
        table = _table()
        for pid in _tree(table, roots):
            command_line = _command_line(pid)
            if command_line is None:
                continue  # ended since the table was read: its last sample stands
            _, started, ticks = table[pid]
            key = (pid, started)
            name = describe(pid)
            if key in self._last and (not command_line or name == "?"):
                # An ended process not yet reaped (a zombie) has no command line any
                # more: it keeps the role and name it was seen with.
                role, name, _ = self._last[key]
            else:
                role = role_of(command_line)
            self._last[key] = (role, name, ticks)

    def per_process(self) -> dict[str, float]:
        """``"<role>: <process> [pid]"`` → CPU seconds the process used in the run."""
        return {
            f"{role}: {name} [{pid}]": self._used((pid, started), ticks)
            for (pid, started), (role, name, ticks) in self._last.items()
        }

    def per_role(self) -> dict[str, float]:
        """Role → CPU seconds its processes used in the run."""
        totals: dict[str, float] = collections.defaultdict(float)
        for key, (role, _, ticks) in self._last.items():
            totals[role] += self._used(key, ticks)
        return dict(totals)

    def _used(self, key: _Key, ticks: int) -> float:
        return max(0, ticks - self._before.get(key, 0)) / _TICK


def _table() -> dict[int, tuple[int, int, int]]:
    """pid → (parent's pid, start time, utime + stime) of every process, in ticks."""
    # After the name: ppid(4) … utime(14) stime(15) … starttime(22), 3 first.
    return {
        pid: (int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]))
        for pid, fields in all_proc_stats()
    }


def _tree(table: dict[int, tuple[int, int, int]], roots: typing.Iterable[int]) -> set[int]:
    """``roots`` that are in ``table`` and all their descendants."""
    children = collections.defaultdict(list)
    for pid, (parent, _, _) in table.items():
        children[parent].append(pid)
    found, todo = set(), [pid for pid in roots if pid in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children[pid])
    return found


def _command_line(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
