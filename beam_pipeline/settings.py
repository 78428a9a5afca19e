"""Where the local stack is, read from the environment that run_local.sh sets.

The defaults are the port table in docs/operating.md.  Two PostgreSQL roles: the owner
(``BEAMLINE_PG_USER``) migrates the tables and the operator's tools read them; the
pipeline writes as the writer (``BEAMLINE_PG_WRITER``), which may only select,
insert and update the pipeline's tables.  Passwords never come from flags:
``BEAMLINE_PG_PASSWORD`` / ``BEAMLINE_PG_WRITER_PASSWORD`` first, else the 0600
files that ``run_local.sh setup`` generated in the state folder.

Transport security: ``BEAMLINE_PG_SSLMODE`` and ``BEAMLINE_PG_SSLROOTCERT`` (libpq's
``sslmode`` and ``sslrootcert``) reach psycopg2 and the JDBC URL alike;
``run_local.sh`` sets ``verify-full`` against the local server's certificate.
Unset, both clients use their default (``prefer``: TLS when the server offers it,
unverified).  Kafka's: ``BEAMLINE_KAFKA_BOOTSTRAP_SERVERS`` and
``BEAMLINE_KAFKA_PROPERTIES`` (``beam_pipeline.kafka_security``).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import urllib.parse

__all__ = ["PG_SSLMODES", "REPO_ROOT", "StackSettings", "MissingPasswordError"]

# libpq's and pgjdbc's sslmode values.
PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


class MissingPasswordError(RuntimeError):
    """No PostgreSQL password in the environment nor in the state folder."""


@dataclasses.dataclass(frozen=True)
class StackSettings:
    """Addresses of the local Kafka broker and PostgreSQL server."""

    home: pathlib.Path
    kafka_bootstrap_servers: str
    pg_host: str
    pg_port: int
    pg_database: str
    pg_user: str
    kafka_partitions: int
    pg_writer: str = "beamline_writer"
    pg_sslmode: str | None = None
    pg_sslrootcert: str | None = None

    @classmethod
    def from_env(cls, env: os._Environ | dict | None = None) -> StackSettings:
        env = os.environ if env is None else env
        home = pathlib.Path(env.get("BEAMLINE_HOME", REPO_ROOT / ".beamline"))
        return cls(
            home=home,
            kafka_bootstrap_servers=env.get("BEAMLINE_KAFKA_BOOTSTRAP_SERVERS")
            or f"127.0.0.1:{env.get('BEAMLINE_KAFKA_PORT', '9092')}",
            pg_host=env.get("BEAMLINE_PG_HOST", "127.0.0.1"),
            pg_port=int(env.get("BEAMLINE_PG_PORT", "55432")),
            pg_database=env.get("BEAMLINE_PG_DB", "beamline"),
            pg_user=env.get("BEAMLINE_PG_USER", "beamline"),
            kafka_partitions=int(env.get("BEAMLINE_KAFKA_PARTITIONS", "3")),
            pg_writer=env.get("BEAMLINE_PG_WRITER", "beamline_writer"),
            pg_sslmode=env.get("BEAMLINE_PG_SSLMODE") or None,
            pg_sslrootcert=env.get("BEAMLINE_PG_SSLROOTCERT") or None,
        )

    @property
    def kafka_client_properties(self) -> pathlib.Path:
        """The local broker's SASL_SSL client settings (``run_local.sh setup``)."""
        return self.home / "secrets" / "kafka-client.properties"

    @property
    def password_file(self) -> pathlib.Path:
        return self.home / "secrets" / "pg_password"

    @property
    def writer_password_file(self) -> pathlib.Path:
        return self.home / "secrets" / "pg_writer_password"

    def pg_password(self, env: os._Environ | dict | None = None) -> str:
        """The owner's password."""
        return _password("BEAMLINE_PG_PASSWORD", self.password_file, env)

    def writer_password(self, env: os._Environ | dict | None = None) -> str:
        """The writer's password (the tests log in as the writer with it)."""
        return _password("BEAMLINE_PG_WRITER_PASSWORD", self.writer_password_file, env)

    def writer_password_reference(self, env: os._Environ | dict | None = None) -> dict[str, str]:
        """Where a worker on this machine finds the writer's password, as ``JdbcTarget``
        takes it: the environment variable when it is set, else the file (never the
        password itself, which would travel in the job graph)."""
        env = os.environ if env is None else env
        if env.get("BEAMLINE_PG_WRITER_PASSWORD"):
            return {"password_env": "BEAMLINE_PG_WRITER_PASSWORD"}
        if not self.writer_password_file.is_file():
            self.writer_password(env)  # raises MissingPasswordError, saying what to do
        return {"password_file": str(self.writer_password_file)}

    @property
    def jdbc_url(self) -> str:
        """pgjdbc's URL, with the TLS settings (no secret: a mode and a CA's path)."""
        return self._jdbc_url(self._ssl_settings())

    @property
    def remote_jdbc_url(self) -> str:
        """The URL for workers on other machines (Dataflow): the sslmode passes on, a
        CA path of this machine does not (pgjdbc then reads the worker's
        ``~/.postgresql/root.crt``)."""
        return self._jdbc_url({k: v for k, v in self._ssl_settings().items() if k == "sslmode"})

    def _jdbc_url(self, params: dict[str, str]) -> str:
        url = f"jdbc:postgresql://{self.pg_host}:{self.pg_port}/{self.pg_database}"
        return f"{url}?{urllib.parse.urlencode(params)}" if params else url

    def _ssl_settings(self) -> dict[str, str]:
        settings = {}
        if self.pg_sslmode:
            settings["sslmode"] = self.pg_sslmode
        if self.pg_sslrootcert:
            settings["sslrootcert"] = self.pg_sslrootcert
        return settings

    def ssl_problem(self) -> str | None:
        """What is wrong with the TLS settings, as one line; None when nothing is."""
        if self.pg_sslmode and self.pg_sslmode not in PG_SSLMODES:
            return (
                f"BEAMLINE_PG_SSLMODE={self.pg_sslmode}: expected one of {', '.join(PG_SSLMODES)}"
            )
        if self.pg_sslrootcert and not os.path.isfile(self.pg_sslrootcert):
            return (
                f"BEAMLINE_PG_SSLROOTCERT={self.pg_sslrootcert} is not a file: "
                "run ./run_local.sh setup, or name the server's CA certificate"
            )
        return None

    def psycopg2_kwargs(self, writer: bool = False) -> dict:
        """psycopg2's connection arguments, as the owner or (``writer``) the writer."""
        return {
            "host": self.pg_host,
            "port": self.pg_port,
            "dbname": self.pg_database,
            "user": self.pg_writer if writer else self.pg_user,
            "password": self.writer_password() if writer else self.pg_password(),
            **self._ssl_settings(),
        }


def _password(variable: str, file: pathlib.Path, env: os._Environ | dict | None) -> str:
    env = os.environ if env is None else env
    if env.get(variable):
        return env[variable]
    try:
        return file.read_text().strip()
    except FileNotFoundError:
        raise MissingPasswordError(
            f"no PostgreSQL password: set {variable}, or run ./run_local.sh setup to generate one"
        ) from None
