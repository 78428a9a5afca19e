"""Beam's in-process gRPC servers on the loopback address only.

Beam 2.71's Python SDK binds its local servers to every interface: the
FnApiRunner's control, data, state and logging servers (``'[::]:0'`` in
``runners/portability/fn_api_runner/worker_handlers.py``) and the worker pool
that a LOOPBACK environment starts for Prism and Flink (``'[::]:%s'`` in
``runners/worker/worker_pool_main.py``).  They are unauthenticated: anyone who
reaches the port can feed the worker bundles or read its data.

``install()`` wraps gRPC's ``add_insecure_port`` so that an address on every
interface (``[::]``, ``0.0.0.0``, an empty host) binds ``127.0.0.1`` instead; Beam
advertises these servers as ``localhost:<port>``, which reaches them.  Any other
address is left alone.  The driver installs it before it builds the pipeline.
Upstream, the fix belongs in those two modules (bind ``localhost``, as the Java
job server's ``--job-host`` already does).  Prism's Go job service binds every
interface too (``jobservices.NewServer``) and takes no flag for it: not fixed here.
"""

from __future__ import annotations

import re

from grpc import _server

__all__ = ["install", "installed", "loopback_address"]

_ANY_HOST = re.compile(r"(\[::\]|0\.0\.0\.0|\*|)(:\d+)")
_original = _server._Server.add_insecure_port


def loopback_address(address: str) -> str:
    """``address`` with an every-interface host replaced by ``127.0.0.1``."""
    match = _ANY_HOST.fullmatch(address)
    return f"127.0.0.1{match.group(2)}" if match else address


def _add_insecure_port(self, address: str) -> int:
    return _original(self, loopback_address(address))


def install() -> None:
    """Makes every gRPC server of this process that asks for all interfaces bind
    loopback; idempotent."""
    _server._Server.add_insecure_port = _add_insecure_port


def installed() -> bool:
    return _server._Server.add_insecure_port is _add_insecure_port
