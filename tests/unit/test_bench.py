"""The benchmark's pure parts: the per-record step, the verdict, the figures and their rendering."""

import dataclasses
import json
import subprocess
import sys
import time

import pytest

from datasets.customer_events import DATASET
from schemas import tables
from schemas.ddl import serves
from schemas.records import KafkaRecord
from tools.bench_baselines import copy_text, run_memory_baseline
from tools.bench_cpu import CpuSampler, role_of
from tools.bench_measure import BeamlineRun
from tools.bench_probes import (
    ClusterJob,
    LogLine,
    first_row_sql,
    job_visible_probe,
    last_row_sql,
    run_reads,
)
from tools.bench_report import build_figures, render
from tools.bench_run import baseline_problems, verdict
from tools.bench_step import RecordStep
from tools.event_producer import generate
from tools.peak_memory import proc_stat
from tools.reconcile import Check

pytestmark = pytest.mark.unit

RUN = "r0"
START_MS = 1_795_323_600_000  # 2026-11-22T05:00:00Z, on a 60 s window boundary


def _valid_values(n: int) -> list[bytes]:
    """``n`` valid JSON events, one second of event time apart (no faults injected)."""
    batch = generate(n, RUN, seed=3, start_ms=START_MS, rate_per_s=1.0)
    assert set(batch.labels) == {"valid"}
    return [value for _, value, _ in batch.messages]


def _record(offset: int, value: bytes | None, partition: int = 0) -> KafkaRecord:
    return KafkaRecord("bench_t", partition, offset, START_MS + offset, b"u-1", value)


def _event(value: bytes) -> dict:
    return json.loads(value)


def test_step_outcomes_on_a_hand_made_list():
    first, second = _valid_values(2)
    late_window = dict(_event(second), event_id=f"{RUN}-w2", timestamp="2026-11-22T05:01:30.000Z")
    invalid = dict(_event(first), event_id=f"{RUN}-bad", event_type="teleport")
    nul = dict(_event(first), event_id=f"{RUN}-nul", user_id="u-\u0000")
    records = [
        _record(0, first),  # kept: window [05:00, 05:01)
        _record(1, first, partition=1),  # a byte copy of offset 0: duplicate
        _record(2, b'{"event_id": '),  # malformed: decode / invalid_json
        _record(3, b""),  # empty: decode / empty_payload
        _record(4, json.dumps(invalid).encode()),  # enum violation: validate
        _record(5, json.dumps(nul).encode()),  # valid, but NUL: normalise / nul_character
        _record(6, second),  # kept: same window as offset 0
        _record(7, json.dumps(late_window).encode()),  # kept: window [05:01, 05:02)
    ]
    step = RecordStep(RUN, "json", window_size_s=60)
    for record in records:
        step(record)
    out = step.outcome
    # 8 records = 3 kept + 1 duplicate + 4 dead letters.
    assert out.summary() == {
        "records": 8,
        "valid_unique": 3,
        "duplicates": 1,
        "dead_letters": 4,
        "gold_total": 3,
    }
    assert [(d.stage, d.reason, d.kafka_offset) for d in out.dead_letters] == [
        ("decode", "invalid_json", 2),
        ("decode", "empty_payload", 3),
        ("validate", "schema_violation", 4),
        ("normalise", "nul_character", 5),
    ]
    (duplicate,) = out.duplicates
    assert (duplicate.kafka_partition, duplicate.kafka_offset) == (1, 1)
    assert (duplicate.kept_partition, duplicate.kept_offset) == (0, 0)
    assert [e.kafka_offset for e in out.events] == [0, 6, 7]
    # Windows of 60 s aligned to the epoch; START_MS is on a boundary.
    kind = _event(first)["event_type"], _event(second)["event_type"]
    counts = {(c.window_start_ms - START_MS, c.event_type): c.event_count for c in out.counts(RUN)}
    expected: dict = {}
    for k in kind:
        expected[(0, k)] = expected.get((0, k), 0) + 1
    expected[(60_000, late_window["event_type"])] = 1
    assert counts == expected
    assert all(c.pane_index == 0 and c.pane_timing == "on_time" for c in out.counts(RUN))
    # The kept events' array items, each once, in its child table (the copy adds none).
    kept = [_event(first), _event(second), late_window]
    assert {table: len(rows) for table, rows in out.children.items()} == {
        "customer_event_actions": sum(len(e["user_action"]) for e in kept),
        "customer_event_recommendations": sum(len(e["recommendations"]) for e in kept),
        "customer_event_searches": sum(len(e["search_history"]) for e in kept),
    }


def test_memory_baseline_runs_the_same_step():
    values = _valid_values(3)
    records = [_record(i, v) for i, v in enumerate(values + values[:1])]
    result = run_memory_baseline(records, RUN, "json", 60)
    assert result.outcome.summary()["valid_unique"] == 3
    assert result.outcome.summary()["duplicates"] == 1
    assert result.wall_s >= 0


def test_copy_text_escapes_for_postgres():
    assert copy_text([("a\tb\\c\nd", None, b"\x00\xff", 7, True, 1.5)]) == (
        "a\\tb\\\\c\\nd\t\\N\t\\\\x00ff\t7\tt\t1.5\n"
    )


REPORT = {
    "sent": 105,
    "seed": 42,
    "value_format": "json",
    "topic": "bench_x",
    "injected": {"valid_unique": 96, "malformed": 2, "invalid": 2, "duplicates": 5, "late": 0},
}
GOOD = {"records": 105, "valid_unique": 96, "duplicates": 5, "dead_letters": 4, "gold_total": 96}


def test_baseline_problems_compare_with_the_report():
    assert baseline_problems("A", GOOD, REPORT, {"events": 96, "dead_letters": 4}) == []
    off = dict(GOOD, duplicates=4, dead_letters=5)
    assert baseline_problems("B", off, REPORT) == [
        "baseline B: duplicates is 4, the producer's report says 5",
        "baseline B: dead_letters is 5, the producer's report says 4",
    ]
    assert baseline_problems("A", GOOD, REPORT, {"events": 95}) == [
        "baseline A: table events holds 95 rows, expected 96"
    ]


PASS = Check("produced == valid_unique + duplicates + dead_letters", True, "105 vs 96 + 5 + 4")
FAIL = Check("duplicates == injected duplicates", False, "4 vs 5")


@pytest.mark.parametrize(
    "exit_code, results, problems, expected",
    [
        (0, [PASS], [], (0, [])),
        # Any failing check: no figures, exit 1, the check named.
        (0, [PASS, FAIL], [], (1, ["check failed: duplicates == injected duplicates: 4 vs 5"])),
        # No checks at all is not a balanced run.
        (0, [], [], (1, ["no reconciliation checks ran"])),
        # The run's own failure keeps its exit code.
        (3, [PASS], [], (3, ["the Beamline run failed (exit code 3)"])),
        # A balanced run with a baseline off: still no figures.
        (0, [PASS], ["baseline A: off"], (1, ["baseline A: off"])),
    ],
)
def test_verdict(exit_code, results, problems, expected):
    assert verdict(exit_code, results, problems) == expected


RUN_FIGURES = BeamlineRun(
    exit_code=0,
    wall_s=50.0,
    job_visible_s=6.0,
    first_row_s=15.0,
    last_row_s=45.0,
    cpu_s={
        "driver: python run [10]": 20.04,
        "expansion service: java ExpansionService [11]": 30.0,
        "Python SDK worker: python [12]": 0.3,
        "Python SDK worker: python [13]": 0.44,
    },
    role_cpu_s={"driver": 20.04, "expansion service": 30.0, "Python SDK worker": 0.74},
    tree_cpu_s=51.26,
    peak_rss_mib=700.4,
    services_cpu_s={"kafka": 2.0, "postgres": None},
)


def _figures() -> dict:
    return build_figures(
        run_id="abc",
        runner="direct",
        parallelism=None,
        events=100,
        report=REPORT,
        beamline=RUN_FIGURES,
        a_wall_s=1.05,
        b_wall_s=0.021,
    )


def test_build_figures_rates_and_ratios():
    f = _figures()
    # 105 records: 50 s end to end, 35 s from the first row, 1.05 s (A), 0.021 s (B).
    assert f["beamline"]["records_per_s"] == 2.1
    assert f["beamline"]["startup_s"] == 15.0
    assert f["beamline"]["steady_s"] == 35.0
    assert f["beamline"]["steady_records_per_s"] == 3.0
    # Submit (launch) 0, job visible 6, first row 15, last row 45, exit 50.
    assert f["beamline"]["phases_s"] == {
        "submit_to_job_visible": 6.0,
        "job_visible_to_first_row": 9.0,
        "first_row_to_last_row": 30.0,
        "last_row_to_exit": 5.0,
    }
    assert f["beamline"]["writing_records_per_s"] == 3.5
    assert f["baseline_a"]["records_per_s"] == 100.0
    assert f["baseline_b"]["records_per_s"] == 5000.0
    assert f["ratios"] == {
        "beamline_over_a": 0.021,
        "beamline_over_b": 0.0004,
        "steady_over_a": 0.03,
        "steady_over_b": 0.0006,
    }
    # Processes by CPU, largest first.
    assert list(f["beamline"]["cpu_s"])[:2] == [
        "expansion service: java ExpansionService [11]",
        "driver: python run [10]",
    ]
    assert f["beamline"]["role_cpu_s"] == {
        "expansion service": 30.0,
        "driver": 20.0,
        "Python SDK worker": 0.7,
    }
    assert f["beamline"]["peak_rss_mib"] == 700


PHASE_LABELS = ("submit → job visible", "first row → last row", "last row → exit")


def test_render_ends_in_exactly_one_json_line_with_every_figure():
    figures = _figures()
    lines = render(figures).splitlines()
    assert json.loads(lines[-1]) == figures
    assert sum(1 for line in lines if line.startswith("{")) == 1
    text = "\n".join(lines[:-1])
    assert "Beamline, end to end" in text and "2.1" in text
    assert "A: one consumer, Parquet + PG" in text and "100.0" in text and "0.021" in text
    assert "5,000.0" in text
    assert "start-up (launch → first row in PostgreSQL): 15.00 s" in text
    phases = {label: line.split()[-2:] for line in lines for label in PHASE_LABELS if label in line}
    assert phases["submit → job visible"][-1] == "6.00"
    assert phases["first row → last row"] == ["30.00", "3.5"]  # seconds, records/s
    assert phases["last row → exit"][-1] == "5.00"
    assert "30.0 s  expansion service: java ExpansionService [11]" in text
    assert "0.7 s  Python SDK worker\n" in text
    assert "n/a s  postgres server" in text


def _bench_args(tmp_path, *argv):
    from beam_pipeline.settings import StackSettings
    from tools import bench

    parser = bench._parser(StackSettings.from_env({"BEAMLINE_HOME": str(tmp_path)}))
    return bench.parse_args(parser, list(argv))


def test_beamline_runs_on_the_chosen_runner_with_the_users_extra_flags(tmp_path):
    from tools import bench_run
    from tools.main_job.config import run_flags_for

    args = _bench_args(tmp_path, "--runner", "flink", "--streaming")
    report = {"offsets_before": {"0": 5}, "offsets_after": {"0": 9}}
    command = bench_run.beamline_command(args, "r1", "bench_r1", report)
    assert command[1:4] == ["-m", "run", "--runner=FlinkRunner"]
    assert "--kafka_start_offsets=0=5" in command and "--kafka_stop_offsets=0=9" in command
    assert command[-1] == "--streaming"
    # The main job's flags of python -m run, made by the same function.
    assert command[4:] == run_flags_for(
        run_id="r1",
        dataset="customer_events",
        topic="bench_r1",
        value_format="json",
        start={"0": 5},
        stop={"0": 9},
        output_dir=args.output_dir,
        extra=["--streaming"],
    )
    assert bench_run.parallelism_of(command) is None  # the embedded mini-cluster's default


def test_the_cluster_runs_at_the_benchs_parallelism(tmp_path):
    from tools import bench_run

    report = {"offsets_before": {"0": 5}, "offsets_after": {"0": 9}}
    preset = bench_run.beamline_command(
        _bench_args(tmp_path, "--runner", "flink-cluster"), "r1", "t", report
    )
    assert "--flink_master=127.0.0.1:8081" in preset and bench_run.parallelism_of(preset) == 2
    one = bench_run.beamline_command(
        _bench_args(tmp_path, "--runner", "flink-cluster", "--parallelism", "1"), "r1", "t", report
    )
    assert [a for a in one if a.startswith("--parallelism")] == ["--parallelism=1"]
    assert bench_run.parallelism_of(one) == 1


@pytest.mark.parametrize(
    "argv", [["--parallelism", "2"], ["--runner", "flink", "--parallelism", "0"]]
)
def test_a_parallelism_the_runner_cannot_take_is_a_bad_flag(argv, tmp_path, capsys):
    from tools import bench

    with pytest.raises(SystemExit) as exited:
        bench.main(argv)
    assert exited.value.code == 2
    assert "--parallelism" in capsys.readouterr().err


def test_the_table_names_the_parallelism():
    f = dict(_figures(), runner="flink-cluster", parallelism=2)
    assert render(f).splitlines()[0].endswith("runner flink-cluster, parallelism 2")
    assert _figures()["parallelism"] is None
    assert render(_figures()).splitlines()[0].endswith("runner direct")


def test_a_cluster_runs_job_shape_is_a_figure_and_a_line():
    from beam_pipeline.flink_cluster import JobShape

    assert _figures()["job"] is None  # not on a Flink cluster
    assert not any("Flink job" in line for line in render(_figures()).splitlines())
    shape = JobShape(vertices=87, operators=220, sdk_stages=55, edge_elements=315_000)
    run = dataclasses.replace(RUN_FIGURES, shape=shape)
    f = build_figures(
        run_id="abc",
        runner="flink-cluster",
        parallelism=2,
        events=100,
        report=REPORT,
        beamline=run,
        a_wall_s=1.05,
        b_wall_s=0.021,
    )
    # 315,000 elements between vertices for the report's 105 records.
    assert f["job"] == {
        "vertices": 87,
        "operators": 220,
        "sdk_stages": 55,
        "edge_elements": 315_000,
        "elements_per_record": 3000.0,
    }
    assert (
        "  Flink job: 87 vertices, 220 chained operators (55 Beam stages); 315,000 elements "
        "between vertices, 3,000.00 per record"
    ) in render(f).splitlines()


def test_the_first_row_probe_reads_every_table_by_an_index_or_its_key():
    sql = first_row_sql(DATASET)
    written = [*DATASET.tables.all(), *tables.SHARED]
    assert [table for table, _ in run_reads(DATASET)] == written
    for table, read in run_reads(DATASET):
        # One EXISTS per table, by the columns its key or an index leads with: an
        # index probe, not a scan of every run's rows, every 0.5 s.
        assert serves(table, read), table.name
        where = " AND ".join(f"{c} = %({c})s" for c in read)
        assert sql.count(f"EXISTS (SELECT 1 FROM {table.name} WHERE {where})") == 1
    # The shared tables by run and dataset: by run alone, window_stage_counts (its key
    # leads with dataset) would be read whole.
    assert "FROM window_stage_counts WHERE run_id = %(run_id)s AND dataset = %(dataset)s" in sql


def test_a_phase_whose_end_was_not_seen_is_none():
    run = dataclasses.replace(RUN_FIGURES, job_visible_s=None, last_row_s=None)
    f = build_figures(
        run_id="abc",
        runner="direct",
        parallelism=None,
        events=100,
        report=REPORT,
        beamline=run,
        a_wall_s=1.05,
        b_wall_s=0.021,
    )
    assert f["beamline"]["phases_s"] == dict.fromkeys(
        ["submit_to_job_visible", "job_visible_to_first_row", "first_row_to_last_row"]
    ) | {"last_row_to_exit": None}
    assert f["beamline"]["writing_records_per_s"] is None
    assert any(
        line.split()[-1] == "n/a" for line in render(f).splitlines() if "job visible" in line
    )


def test_the_log_probe_sees_a_line_written_in_pieces(tmp_path):
    log = tmp_path / "beamline.log"
    probe = LogLine(log, "run r1: job started on the ")
    assert not probe()  # no file yet
    log.write_bytes(b"2026 INFO run r1: reading t on the DirectRunner\n2026 INFO run r1: job st")
    assert not probe()
    with log.open("ab") as f:
        f.write(b"arted on the DirectRunner\n")
    assert probe()


def test_the_job_is_visible_in_the_clusters_rest_api_or_by_the_drivers_line(tmp_path):
    cluster = job_visible_probe(
        ["python", "-m", "run", "--flink_master=127.0.0.1:8081", "--run_id=r1"], "r1", tmp_path
    )
    assert isinstance(cluster, ClusterJob)
    assert (cluster._master, cluster._name) == ("127.0.0.1:8081", "beamline-r1")
    for embedded in (["--runner=FlinkRunner"], ["--flink_master=[local]"], []):
        assert isinstance(
            job_visible_probe(["python", "-m", "run", *embedded], "r1", tmp_path), LogLine
        )


def test_the_last_row_is_the_newest_written_at_read_through_each_tables_index():
    sql = last_row_sql(DATASET)
    assert sql.startswith("SELECT greatest((SELECT max(written_at) FROM customer_events WHERE ")
    for table, read in run_reads(DATASET):
        where = " AND ".join(f"{c} = %({c})s" for c in read)
        assert f"(SELECT max(written_at) FROM {table.name} WHERE {where})" in sql


# Command lines as /proc shows them on the stack (the Flink cluster's, a drill's run).
COMMAND_LINES = {
    "java -Xmx469762048 --add-opens=java.base/java.lang=ALL-UNNAMED -cp /h/flink/dist/pyflink/"
    "lib/* org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint --configDir "
    "/h/flink/conf": "JobManager",
    "java -Xmx1181115985 -cp /h/flink/dist/pyflink/lib/* org.apache.flink.runtime.taskexecutor."
    "TaskManagerRunner --configDir /h/flink/conf -D taskmanager.numberOfTaskSlots=2": "TaskManager",
    "java -jar /root/.apache_beam/cache/jars/beamline-flink-job-server-2.62.0/beamline-flink-"
    "job-server-2.62.0.jar --flink-master http://127.0.0.1:8081 --job-port 51445": "job server",
    "/root/.apache_beam/cache/prism/bin/prism --job_port 0": "Prism",
    "/usr/bin/java -Xmx1g -Dbeamline.workerHeap=2g -cp /j/beamline-expansion-service-2.71.0/* "
    "dev.beamline.xlang.LoopbackExpansionServer 8097 --alsoStart…": "expansion service",
    "/v/bin/python -m beam_pipeline.java_services --port=8097": "expansion service",
    "/usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xmx2g -cp /j/beamline-expansion-service-2.71.0/"
    "grpc-core-1.61.0.jar dev.beamline.xlang.ProcessWorkerPool$Worker": "Java SDK worker",
    "python -c from apache_beam.runners.worker.sdk_worker import SdkHarness; SdkHarness("
    '"localhost:43507",worker_id="1-4",state_cache_size=0).run()': "Python SDK worker",
    "/opt/apache/beam/boot --id=1-1 --provision_endpoint=localhost:5": "Python SDK worker",
    "/v/bin/python -m beam_pipeline.worker_pool --service_port=50000": "Python worker pool",
    "/v/bin/python -m run --runner=FlinkRunner --flink_master=127.0.0.1:8081 --parallelism=2 "
    "--run_id=b8718095bd14": "driver",
    "/v/bin/python -m runner_matrix": "other",
    "postgres: beamline beamline 127.0.0.1(5432) idle": "other",
}


@pytest.mark.parametrize("command_line, role", COMMAND_LINES.items(), ids=COMMAND_LINES.values())
def test_each_process_is_named_by_its_role(command_line, role):
    assert role_of(command_line) == role


def test_the_cpu_sampler_counts_from_its_start_and_keeps_a_finished_processs_last_sample():
    # A child that uses 0.3 s of CPU, idles, and exits.
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(1.5)"])
    run = CpuSampler()
    while run.per_role().get("other", 0) < 0.3:
        assert child.poll() is None, "the child ended before it was sampled busy"
        run.sample([child.pid])
        time.sleep(0.05)
    later = CpuSampler([child.pid])  # takes the child's use so far: not its run's
    while child.poll() is None:
        run.sample([child.pid])
        later.sample([child.pid])
        time.sleep(0.05)
    run.sample([child.pid])  # the child is gone: its last sample stands
    (name,) = run.per_process()
    assert name.startswith("other: python") and name.endswith(f"[{child.pid}]")
    assert run.per_role()["other"] >= 0.3
    assert later.per_role()["other"] < 0.1  # idle since ``later`` began


def test_an_ended_process_not_yet_reaped_keeps_its_role():
    # A zombie's command line is empty: sampled then, it must stay what it was (here a
    # "driver", by its arguments), not become "other".
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)", "-m", "run"])
    run = CpuSampler()
    run.sample([child.pid])
    assert [n.split(":")[0] for n in run.per_process()] == ["driver"]
    while (proc_stat(child.pid) or ["Z"])[0] != "Z":  # ended, not reaped: no poll()
        time.sleep(0.05)
    run.sample([child.pid])
    assert [n.split(":")[0] for n in run.per_process()] == ["driver"]
    child.wait()
