"""A cheaper weighing for Beam's Python state cache, installed in every worker.

Beam 2.71's SDK worker caches state values and weighs each one it stores or loads
with ``statecache.get_deep_size``, which calls ``objsize.get_deep_size`` with its
default ``exclude_modules_globals=True``.  That default rebuilds, *on every call*,
a set of the ids of the globals dict of every module in ``sys.modules`` — 1,400 to
1,850 modules in a Beam worker, about 0.4 ms a call — before it looks at the value.
A keyed step weighs 2–4 times per element (read, write, timer clear), so on the
FnApiRunner three quarters of a run's time went into building that set (measured:
38.5 k weighings, 39 s of a 62 s profile over 10,500 records).

``install()`` replaces ``statecache.get_deep_size`` with a weighing that gives the
same answer (module globals are still not counted) but keeps the set of their ids
and rebuilds it only when the number of loaded modules changes.  It is contained:
the same ``objsize`` call with the same size, referent and filter functions, one
extra filter on the cached ids.  It is idempotent, and the stateful DoFns call it
in ``setup()``, so it reaches every Python worker that runs them — the in-process
FnApiRunner, the LOOPBACK workers of Prism and Flink, and PROCESS workers.

Most state values here are plain data (dedup's tuple of ints, the counts' dict of
lists): ``weigh`` walks those itself — the same objects, each counted once by
``sys.getsizeof``, ``None`` not at all, as ``objsize`` does — and hands anything
else to ``objsize``.  The walk costs about a tenth of ``objsize``'s traversal.

Upstream, the fix belongs in ``apache_beam/runners/worker/statecache.py``: pass
``exclude_modules_globals=False`` and exclude module globals through a cached set
(or the filter function), or weigh only on eviction pressure.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading

import objsize
from apache_beam.runners.worker import statecache

__all__ = ["BEAM_WEIGH", "install", "installed", "module_globals_ids", "weigh"]

# Beam's own weighing, kept for tests that compare against it.
BEAM_WEIGH = statecache.get_deep_size

_lock = threading.Lock()
_cached_ids: frozenset[int] = frozenset()
_cached_for = -1  # len(sys.modules) when _cached_ids was built


def module_globals_ids() -> frozenset[int]:
    """The ids of every loaded module's globals dict; rebuilt when modules are added."""
    global _cached_ids, _cached_for
    count = len(sys.modules)
    if count != _cached_for:
        with _lock:
            ids = set()
            for module in list(sys.modules.values()):
                with contextlib.suppress(TypeError):  # vars() of an odd module object
                    ids.add(id(vars(module)))
            _cached_ids, _cached_for = frozenset(ids), count
    return _cached_ids


_LEAVES = frozenset({int, float, str, bytes, bool, type(None)})


def _plain_size(objs) -> int | None:
    """The deep size of ``objs`` if they hold only builtin numbers, strings, bytes,
    tuples, lists and dicts (exact types, no module's globals), else ``None``."""
    seen = {id(None)}  # objsize never counts None, a shared singleton
    pending = list(objs)
    total = 0
    getsizeof = sys.getsizeof
    while pending:
        obj = pending.pop()
        ident = id(obj)
        if ident in seen:
            continue
        seen.add(ident)
        kind = type(obj)
        if kind in _LEAVES:
            total += getsizeof(obj)
        elif kind is tuple or kind is list or (kind is dict and ident not in module_globals_ids()):
            total += getsizeof(obj)
            # What objsize follows: a dict of str keys yields only its values.
            pending.extend(gc.get_referents(obj))
        else:
            return None
    return total


def weigh(*objs) -> int:
    """The deep size of ``objs`` as Beam's state cache counts it, without the rebuild."""
    plain = _plain_size(objs)
    if plain is not None:
        return plain
    excluded = module_globals_ids()
    beam_filter = statecache._filter_func

    def keep(obj) -> bool:
        return id(obj) not in excluded and beam_filter(obj)

    return objsize.get_deep_size(
        *objs,
        get_size_func=statecache._size_func,
        get_referents_func=statecache._get_referents_func,
        filter_func=keep,
        exclude_modules_globals=False,
    )


def installed() -> bool:
    """Whether the state cache weighs with ``weigh``."""
    return statecache.get_deep_size is weigh


def install() -> None:
    """Makes Beam's state cache weigh with ``weigh`` in this process (idempotent)."""
    statecache.get_deep_size = weigh
