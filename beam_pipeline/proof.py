"""The proof pipeline: the smallest real DAG through Beam's Java side.

    ReadFromKafka (bytes, with metadata, bounded)
      → DecodeJson ──────────────→ dead letters (stage decode)
      → ToProofRecords ──────────→ dead letters (stage validate)
      → Parquet files + PostgreSQL upsert (WriteToJdbc)
    dead letters → Parquet files

``build_proof`` is pure: it takes the source and the sinks as arguments and
returns the PCollections, so tests run it on ``Create`` with no sinks.
"""

from __future__ import annotations

import dataclasses
import json
import typing

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas.proof import KEY_COLUMNS, TABLE, ProofRecord
from transforms.decode import DecodeJson
from transforms.records import DEAD_LETTER_TAG, DeadLetter, KafkaRecord, dead_letter
from transforms.sinks import JdbcTarget, WriteParquetFiles, WriteToPostgres, upsert_statement

__all__ = ["ProofOutputs", "ProofSinks", "ToProofRecords", "build_proof", "production_sinks"]

STAGE = "validate"


class _ToProofRecordFn(beam.DoFn):
    """``(KafkaRecord, dict)`` → ``ProofRecord``; a missing or mistyped field is a dead letter."""

    def __init__(self, run_id: str):
        self._run_id = run_id
        self._accepted = Metrics.counter(self.__class__, "accepted")
        self._rejected = Metrics.counter(self.__class__, "rejected")

    def process(self, element: tuple[KafkaRecord, dict]):
        record, payload = element
        record_id, seq = payload.get("id"), payload.get("seq")
        problem = None
        if not isinstance(record_id, str) or not record_id:
            problem = (
                "missing_field" if record_id is None else "wrong_type",
                "id must be a non-empty string",
            )
        elif not isinstance(seq, int) or isinstance(seq, bool):
            problem = ("missing_field" if seq is None else "wrong_type", "seq must be an integer")
        if problem:
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER_TAG, dead_letter(record, STAGE, *problem, self._run_id)
            )
            return
        self._accepted.inc()
        yield ProofRecord(
            record_key=record_id,
            seq=seq,
            payload=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
            kafka_topic=record.topic,
            kafka_partition=record.partition,
            kafka_offset=record.offset,
            run_id=self._run_id,
        )


class ToProofRecords(beam.PTransform):
    """Decoded pairs → ``ProofRecord`` rows; ``[DEAD_LETTER_TAG]`` gets the rejects."""

    def __init__(self, run_id: str):
        super().__init__()
        self._run_id = run_id

    def expand(self, decoded):
        return decoded | "ToProofRecord" >> beam.ParDo(_ToProofRecordFn(self._run_id)).with_outputs(
            DEAD_LETTER_TAG, main="records"
        )


@dataclasses.dataclass(frozen=True)
class ProofSinks:
    """Where each output goes; each entry is applied as its own labelled step."""

    records: typing.Mapping[str, beam.PTransform] = dataclasses.field(default_factory=dict)
    dead_letters: typing.Mapping[str, beam.PTransform] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ProofOutputs:
    records: beam.PCollection  # of ProofRecord
    dead_letters: beam.PCollection  # of DeadLetter


def build_proof(
    pipeline: beam.Pipeline, source: beam.PTransform, run_id: str, sinks: ProofSinks = ProofSinks()
) -> ProofOutputs:
    """Applies the proof graph to ``pipeline``, reading ``source`` (of ``KafkaRecord``)."""
    records = pipeline | "ReadRecords" >> source
    decoded = records | "Decode" >> DecodeJson(run_id)
    parsed = decoded.decoded | "Validate" >> ToProofRecords(run_id)
    dead_letters = (
        decoded[DEAD_LETTER_TAG],
        parsed[DEAD_LETTER_TAG],
    ) | "CollectDeadLetters" >> beam.Flatten().with_output_types(DeadLetter)
    for label, sink in sinks.records.items():
        _ = parsed.records | label >> sink
    for label, sink in sinks.dead_letters.items():
        _ = dead_letters | label >> sink
    return ProofOutputs(records=parsed.records, dead_letters=dead_letters)


def production_sinks(output_prefix: str, target: JdbcTarget, expansion_service: str) -> ProofSinks:
    """Parquet files under ``output_prefix`` and the ``proof_records`` table."""
    return ProofSinks(
        records={
            "WriteRecordsParquet": WriteParquetFiles(
                f"{output_prefix}/proof_records/part", ProofRecord
            ),
            "WriteRecordsPostgres": WriteToPostgres(
                TABLE,
                ProofRecord,
                upsert_statement(TABLE, ProofRecord, KEY_COLUMNS, casts={"payload": "jsonb"}),
                target,
                expansion_service,
            ),
        },
        dead_letters={
            "WriteDeadLettersParquet": WriteParquetFiles(
                f"{output_prefix}/dead_letters/part", DeadLetter
            ),
        },
    )
