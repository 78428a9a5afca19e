"""The rules for flags that name something: run ids, topics, addresses, folders.

No Beam import here: the operator's tools check their flags with the same rules
without loading the SDK.
"""

from __future__ import annotations

import argparse
import pathlib
import re

__all__ = [
    "ConfigError",
    "check_host_port",
    "check_output_dir",
    "check_output_location",
    "check_run_id",
    "check_topic",
    "run_id_argument",
]


class ConfigError(ValueError):
    """A flag is missing or wrong; the message names it and says what to do."""


# A run id names a folder (Parquet, checkpoints the driver removes), a consumer group
# and a value in every row: letters, digits, '_' and '-', starting with a letter or
# digit, so that it can never be '.', '..', absolute, or hold a separator.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Kafka's own rule for topic names (its Topic.validate): at most 249 of these.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"[A-Za-z0-9.-]+:([0-9]{1,5})|\[[0-9A-Fa-f:]+\]:([0-9]{1,5})")


def check_run_id(value: str) -> str:
    """``value`` if it is a safe run id; else ``ConfigError`` saying what one is."""
    if not _RUN_ID.fullmatch(value):
        raise ConfigError(
            f"--run_id {value!r} is not a run id: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def run_id_argument(value: str) -> str:
    """``check_run_id`` as an argparse ``type`` for the operator tools' ``--run_id``."""
    try:
        return check_run_id(value)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def check_topic(flag: str, value: str) -> str:
    """``value`` if Kafka accepts it as a topic name; else ``ConfigError`` naming ``flag``."""
    if not value:
        raise ConfigError(f"{flag} is empty: name the topic to read")
    if not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise ConfigError(
            f"{flag} {value!r} is not a Kafka topic name: use at most 249 letters, digits, "
            "'.', '_' or '-' (not '.' or '..')"
        )
    return value


def check_host_port(flag: str, value: str) -> str:
    """``value`` if it is ``host:port`` with a port in 1-65535; else ``ConfigError``."""
    match = _HOST_PORT.fullmatch(value)
    port = int(next(g for g in match.groups() if g)) if match else 0
    if not 0 < port < 65536:
        raise ConfigError(f"{flag} {value!r} is not host:port (example: localhost:8097)")
    return value


# A Cloud Storage bucket name (3-63 of lower-case letters, digits, '-', '_', '.'),
# then an optional folder path.
_GCS_URI = re.compile(r"gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/[^\0\n]*)?")


def check_output_location(value: str) -> str:
    """``--output_dir`` as the run will use it: a ``gs://bucket/folder`` URI as given
    (trailing slashes dropped), or a local folder resolved (``check_output_dir``)."""
    if value.startswith("gs://"):
        if not _GCS_URI.fullmatch(value):
            raise ConfigError(
                f"--output_dir {value!r} is not gs://<bucket>/<folder> (a bucket is 3-63 "
                "lower-case letters, digits, '-', '_' or '.')"
            )
        return value.rstrip("/")
    return str(check_output_dir(value))


def check_output_dir(value: str) -> pathlib.Path:
    """``--output_dir`` resolved; refused when it is an existing file or the root."""
    if "\0" in value or not value.strip():
        raise ConfigError(f"--output_dir {value!r} is not a folder path")
    path = pathlib.Path(value).resolve()
    if path == pathlib.Path(path.anchor) or (path.exists() and not path.is_dir()):
        raise ConfigError(f"--output_dir {value!r} is not a folder Beamline can write into")
    return path
