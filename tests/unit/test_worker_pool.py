"""The cluster's Python worker pool gives every SDK worker it starts a state cache."""

import os
import re
import socket
import subprocess
import sys

import grpc
import pytest
from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc, endpoints_pb2

from beam_pipeline import worker_pool
from beam_pipeline.settings import REPO_ROOT

pytestmark = pytest.mark.unit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_worker_started_by_the_pool_gets_the_pools_state_cache():
    port = _free_port()
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    pool = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "beam_pipeline.worker_pool",
            f"--service_port={port}",
            "--state_cache_mb=7",
        ],
        cwd=REPO_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            stub = beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolStub(channel)
            # No runner answers at the control endpoint: the worker only has to start.
            control = endpoints_pb2.ApiServiceDescriptor(url="127.0.0.1:1")
            started = stub.StartWorker(
                beam_fn_api_pb2.StartWorkerRequest(worker_id="w1", control_endpoint=control)
            )
            assert started.error == ""
            stub.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="w1"))
    finally:
        pool.terminate()
        _, log = pool.communicate(timeout=60)
    assert "each worker with a state cache of 7 MB" in log
    started = next(line for line in log.splitlines() if "Starting worker" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING ", started)  # timed
    assert f"state_cache_size={7 << 20}," in log  # the worker's own command line


def test_the_state_cache_defaults_to_beams_own_and_cannot_be_negative(capsys):
    assert worker_pool.parse_args(["--service_port=1"]).state_cache_mb == 100
    with pytest.raises(SystemExit):
        worker_pool.parse_args(["--service_port=1", "--state_cache_mb=-1"])
    assert "--state_cache_mb must be 0 or more" in capsys.readouterr().err
