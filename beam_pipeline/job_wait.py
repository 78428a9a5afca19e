"""Waiting for a running job: to its end, for a duration, or until Ctrl-C; then cancelled.

A progress line every few seconds says what the job has written so far.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import typing

__all__ = ["TERMINAL", "wait_for_job"]

_LOG = logging.getLogger(__name__)

# Beam's PipelineState names of a job that has ended.
TERMINAL = ("DONE", "FAILED", "CANCELLED", "STOPPED", "UPDATED", "DRAINED")


def wait_for_job(
    result,
    duration_s: int | None,
    progress: typing.Callable[[], typing.Mapping[str, object]],
    progress_every_s: int,
    started: float,
) -> str:
    """Waits for the job of ``result``: to its end, for ``duration_s``, or until Ctrl-C;
    then cancels it.

    Returns the final state (one of ``TERMINAL``; a job that did not say is
    ``CANCELLED``).  ``progress`` gives the numbers of the line printed every
    ``progress_every_s`` seconds (seconds counted from ``started``, a
    ``time.monotonic()``).  Ctrl-C (SIGINT) is caught here rather than raised
    inside Beam's wait, which would close the job service's channel and leave
    nothing to cancel with; a job still running when the wait ends is cancelled,
    so a stop by time or by Ctrl-C leaves no job behind.
    """
    done, interrupted, quiet = threading.Event(), threading.Event(), threading.Event()

    def wait_for_end():
        try:
            try:
                result.wait_until_finish()
            except Exception as e:  # noqa: BLE001 - a cancelled job "fails"; the state says
                _LOG.debug("the wait ended: %s", e)
            # Beam's portable runner opens the job's state stream with a deadline of
            # --job_server_timeout (300 s by default): the wait above ends then, with
            # DEADLINE_EXCEEDED, while a streaming job runs on.  Poll its state instead.
            while _still_running(result):
                time.sleep(1)
        finally:
            done.set()

    threading.Thread(target=wait_for_end, name="beamline-wait", daemon=True).start()
    threading.Thread(
        target=_progress, args=(progress, started, progress_every_s, quiet), daemon=True
    ).start()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set()) if in_main else None
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        while not done.wait(0.2):
            if interrupted.is_set() or (deadline is not None and time.monotonic() >= deadline):
                break
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        quiet.set()
    if not done.is_set():
        print("stopping the job …", flush=True)
        result.cancel()
        done.wait(120)
    state = str(result.state)
    if state not in TERMINAL:
        state = "CANCELLED"
    return state


def _progress(snapshot, started: float, every_s: float, stop: threading.Event) -> None:
    """Prints one progress line every ``every_s`` seconds until ``stop`` is set.

    The numbers are rows already in the sinks: portable runners report counters
    only when a job ends.
    """
    while not stop.wait(every_s):
        try:
            counts = snapshot()
        except Exception as e:  # noqa: BLE001 - progress must never stop the job
            counts = {"unavailable": str(e).splitlines()[0]}
        print(
            f"  … {time.monotonic() - started:.0f} s, rows so far: "
            + ", ".join(f"{name} {value}" for name, value in counts.items()),
            flush=True,
        )


def _still_running(result) -> bool:
    try:
        return str(result.state) not in TERMINAL
    except Exception as e:  # noqa: BLE001 - the job service is gone: the job with it
        _LOG.debug("the job's state is unavailable: %s", e)
        return False
