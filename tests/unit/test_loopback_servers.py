"""Beam's in-process gRPC servers bind loopback once the driver installs the wrapper."""

import os
from concurrent import futures

import grpc
import pytest

from beam_pipeline import loopback_servers
from tests.procnet import LOOPBACK, listening_sockets

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "asked, bound",
    [
        ("[::]:0", "127.0.0.1:0"),
        ("0.0.0.0:8097", "127.0.0.1:8097"),
        (":5000", "127.0.0.1:5000"),
        ("localhost:0", "localhost:0"),
        ("10.1.2.3:80", "10.1.2.3:80"),
    ],
)
def test_every_interface_becomes_loopback_and_nothing_else_changes(asked, bound):
    assert loopback_servers.loopback_address(asked) == bound


def test_a_server_asking_for_every_interface_listens_on_loopback_only():
    # What Beam's worker_handlers does for the FnApiRunner's control server.
    loopback_servers.install()
    assert loopback_servers.installed()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("[::]:0")
    server.start()
    try:
        where = {address for address, p in listening_sockets(os.getpid()) if p == port}
    finally:
        server.stop(None)
    assert where and where <= LOOPBACK, where
