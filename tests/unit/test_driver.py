"""Flags, configuration and the driver's error lines (no services needed)."""

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipeline import driver
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
    ],
)
def test_bad_flags_are_one_clear_line(argv, message, capsys):
    assert driver.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("beamline: error:") and message in err[0]


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
