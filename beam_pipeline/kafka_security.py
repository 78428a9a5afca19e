"""Kafka client security (SASL, TLS) from a properties file the environment names.

``BEAMLINE_KAFKA_PROPERTIES`` names a Java Kafka client properties file, the kind
``kafka-console-consumer --consumer.config`` takes, holding security settings only
(``security.protocol``, ``sasl.*``, ``ssl.*``: ``ALLOWED_KEYS``).  Nothing of it
is ever a flag, so nothing of it reaches pipeline options.

- The job's Java clients (the Kafka read, the dead-letter write) get *references*
  to the file's entries, ``${beamline:<path>:<key>}``, which Kafka's own
  ``FileConfigProvider`` resolves when a worker creates a client: the job graph,
  the expansion request and the job file carry the path and the key names, never
  a value.  The worker must see the file at the same path.
- The driver's and the operator tools' librdkafka clients (confluent-kafka) read
  the file here and get the same settings under librdkafka's names: the SASL
  user and password from ``sasl.jaas.config``, the CA from a PEM truststore.

Without the variable every client talks PLAINTEXT, as before.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import stat
import typing

__all__ = [
    "ALLOWED_KEYS",
    "ENV",
    "KafkaSecurity",
    "KafkaSecurityError",
    "client_config",
    "parse_properties",
]

ENV = "BEAMLINE_KAFKA_PROPERTIES"

# The settings the file may hold.  Anything else (group.id, enable.auto.commit, …)
# would change what the job reads or commits, which is the job's to decide.
ALLOWED_KEYS = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.jaas.config",
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.truststore.password",
        "ssl.keystore.type",
        "ssl.keystore.location",
        "ssl.keystore.password",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
    }
)
_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
# The mechanisms both clients speak with a user name and a password.
_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
# The provider's name in the Java clients' config, and the class Kafka ships.
_PROVIDER = "beamline"
_PROVIDER_CLASS = "org.apache.kafka.common.config.provider.FileConfigProvider"
# A path a ${provider:path:key} reference can carry unambiguously.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9/._-]+$")
_JAAS = re.compile(r"^\s*(?P<module>[\w.$]+)\s+required\s+(?P<options>.*?);?\s*$", re.S)
_JAAS_OPTION = re.compile(
    r'(?P<name>[\w.]+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s;"]+))'
)


class KafkaSecurityError(ValueError):
    """The properties file is missing, unreadable, too open, or holds a setting
    Beamline cannot pass on; the message says which and what to do."""


def parse_properties(text: str) -> dict[str, str]:
    """A Java properties file's entries, as ``java.util.Properties.load`` reads them:
    ``#``/``!`` comments, ``=``, ``:`` or blank separators, a trailing backslash
    continuing a line, and the ``\\t \\n \\r \\f \\uXXXX`` escapes (any other
    escaped character stands for itself)."""
    entries: dict[str, str] = {}
    logical: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not logical and (not line or line[0] in "#!"):
            continue
        # An odd number of trailing backslashes continues the line.
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            logical.append(line[:-1])
            if i < len(lines):
                continue
        else:
            logical.append(line)
        key, value = _split_entry("".join(logical))
        logical = []
        entries[_unescape(key)] = _unescape(value)
    return entries


def _split_entry(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line) and line[i] not in "=: \t\f":
        i += 2 if line[i] == "\\" else 1
    key, rest = line[:i], line[i:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 == len(text):
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        else:
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


@dataclasses.dataclass(frozen=True)
class KafkaSecurity:
    """The security settings of every Kafka client of a run; empty for PLAINTEXT."""

    path: pathlib.Path | None = None
    properties: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_env(cls, env: typing.Mapping[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if env is None else env
        named = env.get(ENV, "")
        return cls.load(pathlib.Path(named)) if named else cls()

    @classmethod
    def load(cls, path: pathlib.Path) -> KafkaSecurity:
        if not path.is_absolute() or not _SAFE_PATH.match(str(path)):
            raise KafkaSecurityError(
                f"{ENV}={path}: name the file by an absolute path of letters, digits and ._-/"
            )
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise KafkaSecurityError(f"{ENV}={path}: {e.strerror}") from None
        if not stat.S_ISREG(mode):
            raise KafkaSecurityError(f"{ENV}={path}: not a regular file")
        if mode & 0o077:
            raise KafkaSecurityError(
                f"{ENV}={path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it"
            )
        properties = parse_properties(text)
        security = cls(path.resolve(), properties)
        security._validate()
        return security

    def _validate(self) -> None:
        unknown = sorted(set(self.properties) - ALLOWED_KEYS)
        if unknown:
            raise KafkaSecurityError(
                f"{ENV}={self.path}: {', '.join(unknown)} not allowed there "
                f"(security settings only: {', '.join(sorted(ALLOWED_KEYS))})"
            )
        protocol = self.properties.get("security.protocol", "PLAINTEXT")
        if protocol not in _PROTOCOLS:
            raise KafkaSecurityError(
                f"{ENV}={self.path}: security.protocol={protocol}, expected one of "
                f"{', '.join(sorted(_PROTOCOLS))}"
            )
        if protocol.startswith("SASL_"):
            mechanism = self.properties.get("sasl.mechanism", "")
            if mechanism not in _MECHANISMS:
                raise KafkaSecurityError(
                    f"{ENV}={self.path}: sasl.mechanism={mechanism or '(unset)'}, expected one "
                    f"of {', '.join(sorted(_MECHANISMS))}"
                )
            self.credentials()  # raises unless sasl.jaas.config carries them
        # Java's default store type is JKS, which librdkafka cannot read: say it.
        if "ssl.truststore.location" in self.properties and (
            self.properties.get("ssl.truststore.type") != "PEM"
        ):
            raise KafkaSecurityError(
                f"{ENV}={self.path}: the driver's librdkafka clients read a PEM CA only; "
                "set ssl.truststore.type=PEM"
            )
        if "ssl.keystore.location" in self.properties and (
            self.properties.get("ssl.keystore.type") not in ("PEM", "PKCS12")
        ):
            raise KafkaSecurityError(
                f"{ENV}={self.path}: set ssl.keystore.type to PEM or PKCS12 "
                "(librdkafka reads no JKS)"
            )

    def credentials(self) -> tuple[str, str]:
        """The SASL user and password of ``sasl.jaas.config``."""
        mechanism = self.properties.get("sasl.mechanism", "")
        match = _JAAS.match(self.properties.get("sasl.jaas.config", ""))
        options = {}
        if match and match["module"] == _LOGIN_MODULES.get(mechanism):
            for option in _JAAS_OPTION.finditer(match["options"]):
                quoted = option["quoted"]
                options[option["name"]] = (
                    re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else option["bare"]
                )
        if not (match and options.get("username") and "password" in options):
            raise KafkaSecurityError(
                f"{ENV}={self.path}: sasl.jaas.config must be "
                f'{_LOGIN_MODULES.get(mechanism, "<LoginModule>")} required username="…" '
                'password="…"; for sasl.mechanism=' + (mechanism or "(unset)")
            )
        return options["username"], options["password"]

    @property
    def enabled(self) -> bool:
        return bool(self.properties)

    def java_config(self) -> dict[str, str]:
        """Settings for a Java Kafka client: every entry a reference the client
        resolves from the file, plus the provider that resolves them (allowed to read
        the file's folder only)."""
        if not self.enabled:
            return {}
        config = {
            "config.providers": _PROVIDER,
            f"config.providers.{_PROVIDER}.class": _PROVIDER_CLASS,
            f"config.providers.{_PROVIDER}.param.allowed.paths": str(self.path.parent),
        }
        for key in sorted(self.properties):
            config[key] = f"${{{_PROVIDER}:{self.path}:{key}}}"
        return config

    def librdkafka_config(self) -> dict[str, str]:
        """The same settings under librdkafka's names, values included (for clients
        in this process only)."""
        p = self.properties
        config: dict[str, str] = {}
        if "security.protocol" in p:
            config["security.protocol"] = p["security.protocol"]
        if p.get("security.protocol", "").startswith("SASL_"):
            config["sasl.mechanism"] = p["sasl.mechanism"]
            config["sasl.username"], config["sasl.password"] = self.credentials()
        if "ssl.truststore.location" in p:
            config["ssl.ca.location"] = p["ssl.truststore.location"]
        if "ssl.keystore.location" in p:
            if p.get("ssl.keystore.type") == "PKCS12":
                config["ssl.keystore.location"] = p["ssl.keystore.location"]
                if "ssl.keystore.password" in p:
                    config["ssl.keystore.password"] = p["ssl.keystore.password"]
            else:  # one PEM file holding the key and its certificate chain
                config["ssl.certificate.location"] = p["ssl.keystore.location"]
                config["ssl.key.location"] = p["ssl.keystore.location"]
                if "ssl.key.password" in p:
                    config["ssl.key.password"] = p["ssl.key.password"]
        if "ssl.endpoint.identification.algorithm" in p:
            algorithm = p["ssl.endpoint.identification.algorithm"]
            config["ssl.endpoint.identification.algorithm"] = algorithm or "none"
        return config


def client_config(
    bootstrap_servers: str,
    extra: typing.Mapping[str, typing.Any] | None = None,
    env: typing.Mapping[str, str] | None = None,
) -> dict[str, typing.Any]:
    """A confluent-kafka client's config: the servers, the security settings of
    ``BEAMLINE_KAFKA_PROPERTIES`` if set, then ``extra``."""
    config: dict[str, typing.Any] = {"bootstrap.servers": bootstrap_servers}
    config.update(KafkaSecurity.from_env(env).librdkafka_config())
    config.update(extra or {})
    return config
