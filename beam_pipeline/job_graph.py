"""The job's graph from its configuration: the Kafka read → the dataset's graph → the sinks.

One wiring for every runner: the local runners and Dataflow differ only in where the
sinks write (``target``) and which expansion service builds the Java stages.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions

from beam_pipeline.graph import GraphParams, build_graph, production_sinks
from beam_pipeline.options import Config
from schemas.dataset import Dataset
from transforms.kafka_io import ReadKafkaRecords
from transforms.sinks import JdbcTarget

__all__ = ["build_job_graph"]


def build_job_graph(
    pipeline: beam.Pipeline,
    config: Config,
    dataset: Dataset,
    target: JdbcTarget,
    expansion_service: str,
) -> None:
    """Applies the job to ``pipeline``: ``dataset``'s graph between the Kafka read that
    ``config`` describes and the production sinks (Parquet under
    ``config.output_prefix``, PostgreSQL at ``target``, dead letters to Kafka).
    A pipeline without ``--streaming`` gets the graph's batch form."""
    build_graph(
        pipeline,
        dataset,
        ReadKafkaRecords(
            config.kafka_bootstrap_servers,
            [config.kafka_topic],
            expansion_service,
            max_num_records=config.kafka_max_records,
            max_read_time_s=config.kafka_max_read_time_s,
            start_read_time_ms=config.kafka_start_read_time_ms,
            consumer_config=config.consumer_config(),
            partition_counts=config.kafka_partition_counts,
            commit_offsets=config.unbounded,  # an unbounded read always has a group
            max_delay_s=config.kafka_max_delay_s if config.unbounded else 0,
        ),
        GraphParams(
            run_id=config.run_id,
            dedup_ttl_s=config.dedup_ttl_s,
            window_size_s=config.window_size_s,
            window_period_s=config.window_period_s,
            allowed_lateness_s=config.allowed_lateness_s,
            value_format=config.value_format,
            batch=not pipeline.options.view_as(StandardOptions).streaming,
            arrival_delay_ms=round(config.kafka_max_delay_s * 1000) if config.unbounded else None,
        ),
        production_sinks(
            dataset,
            config.output_prefix,
            target,
            expansion_service,
            config.kafka_bootstrap_servers,
            file_window_s=config.window_size_s,
            kafka_producer_config=config.producer_config(),
        ),
    )
