"""Packaging shim for Beamline.

Beam stages this file to workers with ``--setup_file=./setup.py``: it installs the
five packages a worker runs (``beam_pipeline``, ``datasets``, ``transforms``,
``runner_patches``, ``schemas``) with the schema files as package data, and their
dependencies.  The operator's tools
(``tools/``: the main job, the reconciliation, the stack, the producers, the bench)
are not packaged, so they never reach a worker; they run from the checkout, and the
``tools`` extra holds what only they need (Faker).  Tool configuration lives in
``pyproject.toml``.

Why Beam 2.71.0 and not newer: the Java side of every cross-language transform
(KafkaIO, JdbcIO, the SDK harness, the expansion service) must come from Maven
Central, and 2.71.0 is the newest release whose Java modules are all there.  The
Python SDK is pinned to the same release because the JDBC configuration crosses
the language boundary as a row encoded without its schema.
"""

import setuptools

BEAM_VERSION = "2.71.0"

REQUIRED = [
    f"apache-beam[gcp]=={BEAM_VERSION}",
    "confluent-kafka==2.16.1",
    "fastavro==1.13.1",
    "jsonschema==4.26.0",
    "orjson==3.13.0",  # the fast JSON path (transforms.decode); apache-beam[gcp] brings it too
    "psycopg2-binary==2.9.13",
    "pyarrow==18.1.0",
]

TOOLS = [
    "faker==40.54.0",
]

TEST = [
    "hypothesis==6.170.15",
    "mkdocs==1.6.1",
    "pytest==9.2.0",
    "ruff==0.17.6",
]

setuptools.setup(
    name="beamline",
    version="0.1.0",
    description="A streaming data pipeline on Apache Beam: Kafka to Parquet and PostgreSQL.",
    python_requires=">=3.10",
    packages=setuptools.find_packages(
        include=["beam_pipeline*", "datasets*", "transforms*", "runner_patches*", "schemas*"]
    ),
    package_data={"schemas": ["*.json", "*.avsc", "sql/*.sql"]},
    install_requires=REQUIRED,
    extras_require={"tools": TOOLS, "test": TOOLS + TEST},
)
