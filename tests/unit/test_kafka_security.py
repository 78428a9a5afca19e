"""Kafka client security from BEAMLINE_KAFKA_PROPERTIES: the file's checks, what
the Java clients get (references, never values) and what librdkafka gets."""

import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipeline import driver
from beam_pipeline.kafka_security import (
    ENV,
    KafkaSecurity,
    KafkaSecurityError,
    client_config,
    parse_properties,
)
from beam_pipeline.options import Config

pytestmark = pytest.mark.unit

PASSWORD = 'pa"ss\\word=1'
JAAS = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required "
    'username="beamline" password="pa\\"ss\\\\word=1";'
)


def _write(tmp_path, text, mode=0o600):
    path = tmp_path / "client.properties"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def _sasl_ssl(tmp_path, **extra):
    lines = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/etc/kafka/ca.pem",
        **extra,
    }
    # A backslash in the file escapes the next character (java.util.Properties).
    jaas = JAAS.replace("\\", "\\\\")
    text = "# a comment\n" + "".join(f"{k}={v}\n" for k, v in lines.items())
    return _write(tmp_path, text + f"sasl.jaas.config = {jaas}\n")


def test_properties_read_as_java_reads_them():
    text = (
        "# comment\n! also a comment\n\n"
        "a=1\n"
        "b : two words\n"
        "c three\n"
        "long = first \\\n    second\n"
        "escaped=tab\\there\\u0041\\:\\\\\n"
        "   indented.key=x\n"
        "empty=\n"
    )
    assert parse_properties(text) == {
        "a": "1",
        "b": "two words",
        "c": "three",
        "long": "first second",
        "escaped": "tab\thereA:\\",
        "indented.key": "x",
        "empty": "",
    }


def test_a_sasl_ssl_file_gives_java_references_and_librdkafka_values(tmp_path):
    path = _sasl_ssl(tmp_path)
    security = KafkaSecurity.load(path)
    assert security.credentials() == ("beamline", PASSWORD)

    java = security.java_config()
    assert java["config.providers"] == "beamline"
    assert java["config.providers.beamline.class"].endswith("FileConfigProvider")
    assert java["config.providers.beamline.param.allowed.paths"] == str(tmp_path)
    assert java["sasl.jaas.config"] == f"${{beamline:{path}:sasl.jaas.config}}"
    assert java["security.protocol"] == f"${{beamline:{path}:security.protocol}}"
    assert not [v for v in java.values() if "word=1" in v or "SASL_SSL" in v]

    assert security.librdkafka_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "beamline",
        "sasl.password": PASSWORD,
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }


def test_a_pem_keystore_and_no_hostname_check_translate(tmp_path):
    path = _sasl_ssl(
        tmp_path,
        **{
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": "/etc/kafka/client.pem",
            "ssl.key.password": "k",
            "ssl.endpoint.identification.algorithm": "",
        },
    )
    config = KafkaSecurity.load(path).librdkafka_config()
    assert (
        config["ssl.certificate.location"] == config["ssl.key.location"] == "/etc/kafka/client.pem"
    )
    assert config["ssl.key.password"] == "k"
    assert config["ssl.endpoint.identification.algorithm"] == "none"


@pytest.mark.parametrize(
    "text, mode, message",
    [
        ("security.protocol=SSL\n", 0o644, "readable by others (mode 644): chmod 600 it"),
        ("group.id=mine\n", 0o600, "group.id not allowed there"),
        ("security.protocol=TLS\n", 0o600, "security.protocol=TLS, expected one of"),
        (
            "security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\n",
            0o600,
            "sasl.mechanism=GSSAPI, expected one of PLAIN",
        ),
        (
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
            'required username="u" password="p";\n',
            0o600,
            "sasl.jaas.config must be org.apache.kafka.common.security.plain.PlainLoginModule",
        ),
        (
            "security.protocol=SSL\nssl.truststore.location=/ts.jks\n",
            0o600,
            "set ssl.truststore.type=PEM",
        ),
        (
            "security.protocol=SSL\nssl.keystore.type=JKS\nssl.keystore.location=/ks\n",
            0o600,
            "set ssl.keystore.type to PEM or PKCS12",
        ),
    ],
)
def test_a_file_beamline_cannot_pass_on_is_refused_saying_why(tmp_path, text, mode, message):
    path = _write(tmp_path, text, mode)
    with pytest.raises(KafkaSecurityError, match="^" + ENV) as raised:
        KafkaSecurity.load(path)
    assert message in str(raised.value)


@pytest.mark.parametrize("named", ["relative/client.properties", "/a:b/client.properties"])
def test_a_path_a_reference_cannot_carry_is_refused(named):
    with pytest.raises(KafkaSecurityError, match="absolute path of letters"):
        KafkaSecurity.from_env({ENV: named})


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(KafkaSecurityError, match="No such file"):
        KafkaSecurity.from_env({ENV: str(tmp_path / "absent.properties")})


def test_without_the_variable_every_client_is_plaintext():
    assert KafkaSecurity.from_env({}).java_config() == {}
    assert client_config("h:1", {"log_level": 0}, env={}) == {
        "bootstrap.servers": "h:1",
        "log_level": 0,
    }


def test_the_job_reads_and_writes_kafka_with_references_only(tmp_path, monkeypatch):
    path = _sasl_ssl(tmp_path)
    monkeypatch.setenv(ENV, str(path))
    config = Config.from_options(PipelineOptions(["--runner=PrismRunner", "--run_id=r1"]))
    consumer, producer = config.consumer_config(), config.producer_config()
    assert consumer["group.id"] == "beamline-customer_events"
    for settings in (consumer, producer):
        assert settings["sasl.jaas.config"] == f"${{beamline:{path}:sasl.jaas.config}}"
    assert "word=1" not in repr(config)


def test_a_bad_properties_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, str(_write(tmp_path, "acks=all\n")))
    assert driver.main(["--kafka_max_records=5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "acks not allowed there" in err[0], err


def test_dataflow_refuses_a_file_its_workers_cannot_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, str(_sasl_ssl(tmp_path)))
    argv = ["--runner=DataflowRunner", "--project=p", "--region=europe-west1"]
    argv += ["--temp_location=gs://bkt/tmp", "--output_dir=gs://bkt/out", "--dry_run=True"]
    argv += [f"--dataflow_job_file={tmp_path / 'job.json'}"]
    assert driver.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Dataflow's workers cannot read" in err[0], err
    assert not (tmp_path / "job.json").exists()
