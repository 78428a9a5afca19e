"""Where the stack is and how clients reach it, from the environment."""

import pytest

from beam_pipeline.settings import StackSettings

pytestmark = pytest.mark.unit

CA = "/srv/beamline/secrets/pg-ca.pem"


def test_tls_settings_reach_the_jdbc_url_and_psycopg2(monkeypatch):
    env = {"BEAMLINE_PG_SSLMODE": "verify-full", "BEAMLINE_PG_SSLROOTCERT": CA}
    settings = StackSettings.from_env(env)
    assert settings.jdbc_url == (
        "jdbc:postgresql://127.0.0.1:55432/beamline"
        "?sslmode=verify-full&sslrootcert=%2Fsrv%2Fbeamline%2Fsecrets%2Fpg-ca.pem"
    )
    # Workers elsewhere get the mode, not a path of this machine.
    assert (
        settings.remote_jdbc_url == "jdbc:postgresql://127.0.0.1:55432/beamline?sslmode=verify-full"
    )
    monkeypatch.setenv("BEAMLINE_PG_PASSWORD", "pw")
    kwargs = settings.psycopg2_kwargs()
    assert (kwargs["sslmode"], kwargs["sslrootcert"], kwargs["password"]) == (
        "verify-full",
        CA,
        "pw",
    )


def test_without_tls_settings_the_url_is_bare():
    settings = StackSettings.from_env({})
    assert (
        settings.jdbc_url
        == settings.remote_jdbc_url
        == "jdbc:postgresql://127.0.0.1:55432/beamline"
    )
    assert settings.ssl_problem() is None


@pytest.mark.parametrize(
    "env, message",
    [
        ({"BEAMLINE_PG_SSLMODE": "strict"}, "BEAMLINE_PG_SSLMODE=strict: expected one of disable"),
        ({"BEAMLINE_PG_SSLROOTCERT": "/nonexistent/ca.pem"}, "/nonexistent/ca.pem is not a file"),
    ],
)
def test_a_bad_tls_setting_is_one_line(env, message):
    assert message in StackSettings.from_env(env).ssl_problem()


def test_the_kafka_servers_variable_wins_over_the_port():
    assert StackSettings.from_env({"BEAMLINE_KAFKA_PORT": "9999"}).kafka_bootstrap_servers == (
        "127.0.0.1:9999"
    )
    env = {"BEAMLINE_KAFKA_PORT": "9999", "BEAMLINE_KAFKA_BOOTSTRAP_SERVERS": "k1:9094,k2:9094"}
    assert StackSettings.from_env(env).kafka_bootstrap_servers == "k1:9094,k2:9094"
