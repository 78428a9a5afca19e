"""Flags, configuration and the driver's error lines (no services needed)."""

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipeline import driver, options
from beam_pipeline.earlier_parquet import set_aside_earlier_parquet, settle_earlier_parquet
from beam_pipeline.job_wait import wait_for_job
from beam_pipeline.options import Config, ConfigError

pytestmark = pytest.mark.unit


def test_help_lists_beamline_and_beam_flags(capsys):
    assert driver.main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--kafka_max_records", "--kafka_topic", "--runner", "--temp_location"):
        assert flag in text


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "reads Kafka as a bounded batch"),
        (["--kafka_max_records=0"], "--kafka_max_records must be a positive number"),
        (["--kafka_max_read_time_s=-5"], "--kafka_max_read_time_s must be a positive number"),
        (["--kafka_max_record=5"], "unknown flag --kafka_max_record: see python -m run --help"),
        (["--kafka_max_records=5", "--window_size_s=0"], "--window_size_s must be a positive"),
        (["--kafka_max_records=5", "--value_format=xml"], "invalid choice: 'xml'"),
        (["--kafka_max_records=five"], "argument --kafka_max_records: invalid int value"),
        (["--kafka_max_records=5", "--dedup_ttl_s=-1"], "--dedup_ttl_s must be a positive"),
        (
            ["--runner=PrismRunner", "--dedup_ttl_s=30", "--window_size_s=60"],
            "--dedup_ttl_s (30) must be at least --window_size_s + --allowed_lateness_s (",
        ),
        (["--kafka_start_offsets=0:5"], "'0:5' is not a partition=offset pair"),
        (["--kafka_start_offsets=0=5,0=6"], "'0=6' is not a partition=offset pair"),
        (["--kafka_stop_offsets=0=9"], "needs --kafka_start_offsets for the same partitions"),
        (
            ["--kafka_start_offsets=0=5", "--kafka_stop_offsets=0=9,1=3"],
            "needs --kafka_start_offsets for the same partitions",
        ),
        (
            ["--kafka_start_offsets=0=5", "--kafka_stop_offsets=0=4"],
            "partition 0 stops at 4, before its start 5",
        ),
        (
            ["--kafka_start_offsets=0=5", "--kafka_start_read_time_ms=1"],
            "both say where to start",
        ),
        (
            ["--kafka_start_offsets=0=5", "--kafka_stop_offsets=0=9", "--kafka_max_records=4"],
            "both bound the read",
        ),
        # A run id names folders the driver writes and removes: never a path.
        (["--kafka_max_records=5", "--run_id=/"], "'/' is not a run id"),
        (["--kafka_max_records=5", "--run_id=.."], "'..' is not a run id"),
        (["--kafka_max_records=5", "--run_id=a/../b"], "is not a run id"),
        (["--kafka_max_records=5", "--run_id="], "'' is not a run id"),
        (["--kafka_max_records=5", "--run_id=x" + "y" * 64], "is not a run id"),
        (["--kafka_max_records=5", "--kafka_topic=a/b"], "'a/b' is not a Kafka topic name"),
        (["--kafka_max_records=5", "--kafka_topic=.."], "'..' is not a Kafka topic name"),
        (["--kafka_max_records=5", "--kafka_topic="], "--kafka_topic is empty"),
        (["--kafka_max_records=5", "--expansion_service=8097"], "is not host:port"),
        (["--kafka_max_records=5", "--expansion_service=h:99999"], "is not host:port"),
        (["--kafka_max_records=5", "--output_dir=/"], "is not a folder Beamline can write"),
        (["--kafka_max_records=5", "--output_dir=gs://A_b/x"], "is not gs://<bucket>/<folder>"),
        (["--kafka_max_records=5", "--output_dir=gs://"], "is not gs://<bucket>/<folder>"),
        (
            ["--runner=DataflowRunner", "--kafka_max_records=5", "--output_dir=/tmp/out"],
            "Dataflow's workers cannot write to this machine's disk",
        ),
        (
            ["--runner=DataflowRunner", "--output_dir=gs://b-1/x", "--dry_run=True"],
            "add --dataflow_job_file=PATH",
        ),
        (["--kafka_max_records=5", "--detach"], "--detach submits to a Flink cluster"),
        # Beam's own flags with a value Beam refuses only once the job is built.
        (
            ["--runner=Foo", "--kafka_max_records=5"],
            "--runner=Foo: Beam has no such runner; Beamline runs on DirectRunner, "
            "PrismRunner, FlinkRunner or DataflowRunner",
        ),
        (["--runner=Foo"], "--runner=Foo: Beam has no such runner"),
        (["--runner=no.such.Runner", "--kafka_max_records=5"], "Beam has no such runner"),
        (
            ["--runner=PrismRunner", "--environment_type=FOO"],
            "--environment_type=FOO: not an environment type; use one of LOOPBACK, DOCKER",
        ),
        (
            ["--runner=FlinkRunner", "--flink_job_server_jar=/x.jar", "--detach"],
            "--detach submits to a Flink cluster",
        ),
    ],
)
def test_bad_flags_are_one_clear_line(argv, message, capsys):
    assert driver.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("beamline: error:") and message in err[0]


def test_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    a_file = tmp_path / "f"
    a_file.write_text("")
    assert driver.main(["--kafka_max_records=5", f"--output_dir={a_file}"]) == 2
    assert "is not a folder Beamline can write into" in capsys.readouterr().err


def test_good_identifiers_pass_as_given(tmp_path):
    config = Config.from_options(
        PipelineOptions(
            [
                "--kafka_max_records=5",
                "--run_id=Run_2026-12-02",
                "--kafka_topic=customer.events_v2-a",
                "--expansion_service=localhost:8097",
                f"--output_dir={tmp_path}/out",
            ]
        )
    )
    assert (config.run_id, config.kafka_topic) == ("Run_2026-12-02", "customer.events_v2-a")
    assert config.expansion_service == "localhost:8097"
    assert config.output_dir == str(tmp_path / "out")
    assert (
        Config.from_options(
            PipelineOptions(["--kafka_max_records=5", "--output_dir=gs://my-bucket/runs/"])
        ).output_dir
        == "gs://my-bucket/runs"
    )


def test_streaming_runner_may_read_unbounded():
    config = Config.from_options(PipelineOptions(["--runner=PrismRunner"]))
    assert config.kafka_max_records is None and config.runner == "PrismRunner"


def test_config_is_frozen_and_gets_a_run_id():
    config = Config.from_options(PipelineOptions(["--kafka_max_records=5"]))
    assert len(config.run_id) == 12
    with pytest.raises(AttributeError):
        config.run_id = "x"


def test_unreachable_kafka_is_one_clear_line(capsys):
    # Nothing listens on port 1 of loopback.
    code = driver.main(["--kafka_max_records=5", "--kafka_bootstrap_servers=127.0.0.1:1"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Kafka does not answer at 127.0.0.1:1" in err[0]
    assert "./run_local.sh start" in err[0]


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_start_and_stop_offsets_give_records_per_partition():
    options = PipelineOptions(
        ["--kafka_start_offsets=0=5,1=0,2=7", "--kafka_stop_offsets=0=9,1=0,2=10"]
    )
    config = Config.from_options(options)
    assert config.kafka_start_offsets == {0: 5, 1: 0, 2: 7}
    assert config.kafka_partition_counts == {0: 4, 1: 0, 2: 3}


def test_the_flink_preset_names_the_job_server_the_pom_builds():
    import pathlib
    import re

    from beam_pipeline import runners

    pom = (pathlib.Path(__file__).parents[2] / "java/flink-job-server/pom.xml").read_text()
    assert re.search(r"<version>([^<]+)</version>", pom).group(1) == (
        runners.FLINK_JOB_SERVER_VERSION
    )
    flags = runners.preset_flags("FlinkRunner", ["--flink_job_server_jar=/x.jar"], True)
    assert flags == [
        "--flink_master=[local]",
        "--environment_type=LOOPBACK",
        "--streaming",
        "--max_bundle_size=50",
        "--checkpointing_interval=5000",
        "--finish_bundle_before_checkpointing",
    ]
    state = runners.preset_flags(
        "FlinkRunner", ["--flink_job_server_jar=/x.jar"], True, pathlib.Path("/tmp/ckpt")
    )
    assert state[-2:] == [
        "--state_backend=filesystem",
        "--state_backend_storage_path=file:///tmp/ckpt",
    ]
    bounded = runners.preset_flags("FlinkRunner", ["--flink_job_server_jar=/x.jar"], False)
    assert not [f for f in bounded if "checkpoint" in f or "state_backend" in f]
    assert "--streaming" in bounded  # Flink's batch mode: 7x slower on the same backlog
    assert "--streaming" not in runners.preset_flags("PrismRunner", ["--prism_location=/p"], False)
    given = ["--flink_job_server_jar=/x.jar", "--checkpointing_interval=1000"]
    assert "--checkpointing_interval=5000" not in runners.preset_flags("FlinkRunner", given, True)
    assert runners.preset_flags("DirectRunner", [], False) == []


def test_the_consumer_group_is_the_flags_the_runs_or_the_datasets():
    def group(*argv):
        return Config.from_options(PipelineOptions(["--run_id=r1", *argv])).consumer_group()

    unbounded = "--runner=FlinkRunner"
    assert group(unbounded) == "beamline-customer_events"
    assert group(unbounded, "--dataset=customers") == "beamline-customers"
    assert group(unbounded, "--kafka_start_offsets=0=5") == "beamline-r1"
    assert group(unbounded, "--kafka_consumer_group=team.orders-v2") == "team.orders-v2"
    assert group("--kafka_max_records=5") is None  # a bounded read commits nothing
    with pytest.raises(ConfigError, match="not a Kafka topic name"):
        group(unbounded, "--kafka_consumer_group=a/b")


def test_committing_offsets_needs_a_consumer_group():
    from transforms.kafka_io import ReadKafkaRecords

    with pytest.raises(ValueError, match="group.id"):
        ReadKafkaRecords("127.0.0.1:9092", ["t"], "127.0.0.1:1", commit_offsets=True)


def test_a_flink_cluster_gets_the_stacks_workers_not_the_driver():
    from beam_pipeline import runners

    argv = ["--flink_job_server_jar=/x.jar", "--flink_master=127.0.0.1:8081"]
    assert runners.flink_cluster_master(argv) == "127.0.0.1:8081"
    flags = runners.preset_flags("FlinkRunner", argv, False)
    assert "--environment_type=EXTERNAL" in flags
    assert f"--environment_config=127.0.0.1:{runners.PYTHON_WORKERS_PORT}" in flags
    assert "--sdk_worker_parallelism=2" in flags
    assert not [f for f in flags if "LOOPBACK" in f or "[local]" in f]
    named = runners.preset_flags("FlinkRunner", argv, False, job_name="beamline-r1")
    assert sorted(named) == sorted([*flags, "--job_name=beamline-r1"])
    # A job name of the user's own: kept, and every other preset still applies.
    assert (
        runners.preset_flags("FlinkRunner", [*argv, "--job_name=mine"], False, job_name="x")
        == flags
    )
    detached = runners.preset_flags("FlinkRunner", argv, False, detach=True)
    assert sorted(detached) == sorted([*flags, "--attached_mode"])
    for local in ("[local]", "[auto]"):
        assert runners.flink_cluster_master([f"--flink_master={local}"]) is None
    assert runners.flink_cluster_master([]) is None
    assert "--flink_master=127.0.0.1:8081" in runners.RUNNER_PRESETS["flink-cluster"]
    assert "--parallelism=2" in runners.RUNNER_PRESETS["flink-cluster"]


def test_the_cluster_preset_submits_to_the_clusters_job_server_and_starts_none():
    from beam_pipeline import runners

    cluster = [f for f in runners.RUNNER_PRESETS["flink-cluster"] if f.startswith("--flink_")]
    assert runners.cluster_job_server(cluster)
    flags = runners.preset_flags("FlinkRunner", cluster, False)
    assert f"--job_endpoint=127.0.0.1:{runners.FLINK_JOB_PORT}" in flags
    assert not [f for f in flags if f.startswith("--flink_job_server_jar")]
    assert "--environment_type=EXTERNAL" in flags
    # No job server of the driver's: nothing to preload (no library is needed).
    env = {"LD_PRELOAD": "/other.so"}
    runners.preload_loopback("FlinkRunner", cluster, env)
    assert env == {"LD_PRELOAD": "/other.so"}
    # A job server of the user's, or a jar to start one from: no endpoint of ours.
    for own in ("--job_endpoint=127.0.0.1:1", "--flink_job_server_jar=/x.jar"):
        assert not runners.cluster_job_server([*cluster, own])
        assert not [
            f
            for f in runners.preset_flags("FlinkRunner", [*cluster, own], False)
            if f.startswith("--job_endpoint")
        ]
    assert not runners.cluster_job_server(["--flink_master=[local]"])


def test_a_stopped_cluster_job_server_is_one_clear_line(capsys, monkeypatch):
    from beam_pipeline import flink_run, preflight, runners

    monkeypatch.setattr(driver, "check_kafka", lambda *_: None)
    monkeypatch.setattr(driver, "check_postgres", lambda *_: None)
    monkeypatch.setattr(driver, "jdbc_target", lambda *_: None)

    def job_server_refused(address, what):
        if address.endswith(f":{runners.FLINK_JOB_PORT}"):
            raise preflight.ServiceUnavailable(f"{what} does not answer at {address}: x")

    monkeypatch.setattr(flink_run, "check_listening", job_server_refused)
    argv = ["--runner=FlinkRunner", "--flink_master=127.0.0.1:1", "--kafka_max_records=5"]
    assert driver.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the Flink cluster's job server does not answer" in err[0]


def test_a_presets_parallelism_is_replaced_only_where_flink_runs_the_job():
    from beam_pipeline import runners

    assert runners.runner_flags("direct") == ["--runner=DirectRunner"]
    cluster = runners.runner_flags("flink-cluster", 1)
    assert cluster[:-1] == [
        f for f in runners.RUNNER_PRESETS["flink-cluster"] if not f.startswith("--parallelism")
    ]
    assert cluster[-1] == "--parallelism=1"
    assert runners.runner_flags("flink", 2) == ["--runner=FlinkRunner", "--parallelism=2"]
    for runner, parallelism in (("direct", 2), ("prism", 2), ("flink", 0)):
        with pytest.raises(ValueError, match="--parallelism"):
            runners.runner_flags(runner, parallelism)


def test_a_missing_flink_cluster_is_one_clear_line(capsys, monkeypatch):
    from beam_pipeline import flink_run, preflight

    monkeypatch.setattr(driver, "check_kafka", lambda *_: None)
    monkeypatch.setattr(driver, "check_postgres", lambda *_: None)
    monkeypatch.setattr(driver, "jdbc_target", lambda *_: None)

    def refused(address, what):
        raise preflight.ServiceUnavailable(f"{what} does not answer at {address} (refused): x")

    monkeypatch.setattr(flink_run, "check_listening", refused)
    argv = ["--runner=FlinkRunner", "--flink_master=127.0.0.1:1", "--kafka_max_records=5"]
    assert driver.main([*argv, "--flink_job_server_jar=/x.jar"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the Flink cluster's expansion service does not answer" in err[0]


def test_flink_job_server_flags_are_flags_with_the_flink_runner_only():
    flink = ["--runner=FlinkRunner", "--max_bundle_time_mills=500", "--object_reuse"]
    assert driver.unknown_flags(flink) == []
    assert driver.unknown_flags(["--runner=PrismRunner", "--max_bundle_time_mills=500"]) == [
        "--max_bundle_time_mills=500"
    ]
    # A misspelt job-server flag is still refused (Beam would drop it silently).
    assert driver.unknown_flags(["--runner=FlinkRunner", "--max_bundle_time_ms=500"]) == [
        "--max_bundle_time_ms=500"
    ]


class _StreamingResult:
    """A portable job whose state stream hits its deadline while the job runs on."""

    def __init__(self, running_polls: int):
        self._states = ["RUNNING"] * running_polls + ["DONE"]
        self.cancelled = False

    def wait_until_finish(self):
        raise RuntimeError("StatusCode.DEADLINE_EXCEEDED: Deadline Exceeded")

    @property
    def state(self):
        return self._states.pop(0) if len(self._states) > 1 else self._states[0]

    def cancel(self):
        self.cancelled = True


def test_the_wait_outlives_the_job_services_stream_deadline():
    # Beam's state stream ends with DEADLINE_EXCEEDED after --job_server_timeout; the
    # driver must keep waiting on the job's state, not call a running job cancelled.
    result = _StreamingResult(running_polls=2)
    state = wait_for_job(result, None, dict, 3600, 0.0)
    assert state == "DONE" and not result.cancelled


def test_a_bad_flag_is_one_line_on_stderr_from_the_command():
    # The whole process, as a person runs it: Beam's import-time warnings included.
    import pathlib
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "run", "--kafka_max_record=5"],
        cwd=pathlib.Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "beamline: error: unknown flag --kafka_max_record: see python -m run --help"
    ]


OUTPUTS = ("events", "dead_letters")


def _parquet_files(prefix):
    return sorted(str(f.relative_to(prefix)) for f in prefix.rglob("*.parquet"))


def test_a_batch_rerun_replaces_the_earlier_parquet_files(tmp_path):
    prefix = tmp_path / "run1"
    for name in ("events/part-00000-of-00002", "events/part-00001-of-00002", "dead_letters/x"):
        (prefix / f"{name}.parquet").parent.mkdir(parents=True, exist_ok=True)
        (prefix / f"{name}.parquet").write_text("earlier")
    aside = set_aside_earlier_parquet(prefix, OUTPUTS)
    assert _parquet_files(prefix) == [
        ".replaced/dead_letters/x.parquet",
        ".replaced/events/part-00000-of-00002.parquet",
        ".replaced/events/part-00001-of-00002.parquet",
    ]
    (prefix / "events/part-00000-of-00001.parquet").write_text("new")  # the re-run's one shard
    settle_earlier_parquet(aside, replaced=True)
    assert _parquet_files(prefix) == ["events/part-00000-of-00001.parquet"]


def test_a_failed_rerun_puts_the_earlier_files_back(tmp_path):
    prefix = tmp_path / "run1"
    partitioned = "events/year=2026/month=11/day=22/hour=05/part-all-pane0.parquet"
    (prefix / partitioned).parent.mkdir(parents=True)
    (prefix / "events/part-00000-of-00001.parquet").write_text("earlier")
    (prefix / partitioned).write_text("earlier, partitioned")
    aside = set_aside_earlier_parquet(prefix, OUTPUTS)
    assert _parquet_files(prefix) == [
        ".replaced/events/part-00000-of-00001.parquet",
        f".replaced/{partitioned}",
    ]
    settle_earlier_parquet(aside, replaced=False)
    assert _parquet_files(prefix) == ["events/part-00000-of-00001.parquet", partitioned]
    assert (prefix / "events/part-00000-of-00001.parquet").read_text() == "earlier"
    assert (prefix / partitioned).read_text() == "earlier, partitioned"


def test_nothing_to_set_aside_on_a_first_run(tmp_path):
    assert set_aside_earlier_parquet(tmp_path / "new-run", OUTPUTS) is None


def test_the_default_dedup_ttl_outlasts_the_datasets_windows():
    def ttl(*argv):
        return Config.from_options(PipelineOptions(["--runner=FlinkRunner", *argv])).dedup_ttl_s

    assert ttl() == 3600  # customer events: windows of 60 s
    assert ttl("--dataset=customers") == 4200  # an hour's window + 10 minutes' lateness
    assert ttl("--dataset=customers", "--dedup_ttl_s=5000") == 5000


@pytest.mark.parametrize(
    "given, name",
    [
        (None, "DirectRunner"),
        ("flink", "FlinkRunner"),
        ("prismrunner", "PrismRunner"),
        ("apache_beam.runners.portability.flink_runner.FlinkRunner", "FlinkRunner"),
        ("Foo", "Foo"),  # refused by check_beam_flags, named as given
    ],
)
def test_a_runner_is_named_as_beam_resolves_it(given, name):
    # A short name Beam accepts gets the same presets as the class name.
    from beam_pipeline.runners import runner_name

    assert runner_name(given) == name


def test_a_run_that_never_starts_puts_the_earlier_parquet_files_back(tmp_path, monkeypatch):
    from beam_pipeline.java_services import ExpansionServiceError

    monkeypatch.setattr(driver, "check_kafka", lambda *_: None)
    monkeypatch.setattr(driver, "check_postgres", lambda *_: None)
    monkeypatch.setattr(driver, "jdbc_target", lambda *_: None)

    def no_service(*_):
        raise ExpansionServiceError("the expansion service did not start")

    monkeypatch.setattr(driver, "_expansion_service", no_service)
    earlier = tmp_path / "r1" / "customer_events" / "part-00000-of-00001.parquet"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("earlier")
    argv = ["--run_id=r1", f"--output_dir={tmp_path}", "--kafka_max_records=5"]
    assert driver.main(argv) == 1
    assert earlier.read_text() == "earlier"
    assert not (tmp_path / "r1" / ".replaced").exists()


@pytest.mark.parametrize(
    "offsets, text",
    [({0: 120, 1: 95}, "0=120,1=95"), ({"10": 5, "2": 7}, "2=7,10=5")],  # by number, not text
)
def test_offsets_format_as_the_flag_reads_them(offsets, text):
    assert options.format_offsets(offsets) == text
    assert options.parse_offsets("--kafka_start_offsets", text) == {
        int(p): o for p, o in offsets.items()
    }


@pytest.mark.parametrize(
    "runner, order",
    [
        # The FnApiRunner runs the whole job inside run(): it starts as it is handed over.
        ("DirectRunner", ["line", "run"]),
        # A portable runner's run() returns once its job service has the job.
        ("FlinkRunner", ["run", "line"]),
        ("PrismRunner", ["run", "line"]),
    ],
)
def test_the_driver_says_when_the_runner_has_the_job(runner, order, monkeypatch):
    import types

    happened = []
    pipeline = types.SimpleNamespace(run=lambda: happened.append("run") or "result")
    config = types.SimpleNamespace(run_id="r7", runner=runner)
    monkeypatch.setattr(driver._LOG, "info", lambda fmt, line: happened.append(line))
    assert driver._start_job(pipeline, config) == "result"
    line = f"run r7: job started on the {runner}"
    assert [("line" if h == line else h) for h in happened] == order
    assert line.startswith(driver.job_started_line("r7"))
