-- The proof pipeline's table: one row per Kafka record key, upserted, so a
-- re-read of the same records leaves the table as it was.
CREATE TABLE IF NOT EXISTS proof_records (
    record_key      text        PRIMARY KEY,
    seq             bigint      NOT NULL,
    payload         jsonb       NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    run_id          text        NOT NULL,
    written_at      timestamptz NOT NULL DEFAULT now()
);
