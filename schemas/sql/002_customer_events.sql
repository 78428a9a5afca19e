-- The customer-events pipeline's tables.  Every row carries the run_id of the
-- job that wrote it; every write is an upsert on the table's key, so a retried
-- bundle or a re-read of the same records leaves the tables as they were.
-- Times are kept as epoch milliseconds (what the rows carry) with a generated
-- timestamptz beside them for people.

-- Valid, unique events: one row per event_id.
CREATE TABLE IF NOT EXISTS customer_events (
    event_id           text        PRIMARY KEY,
    user_id            text        NOT NULL,
    event_type         text        NOT NULL,
    event_time_ms      bigint      NOT NULL,
    event_time         timestamptz GENERATED ALWAYS AS (to_timestamp(event_time_ms / 1000.0)) STORED,
    device_type        text        NOT NULL,
    country            text        NOT NULL,
    content_id         text        NOT NULL,
    subscription_plan  text        NOT NULL,
    payload            jsonb       NOT NULL,
    kafka_topic        text        NOT NULL,
    kafka_partition    integer     NOT NULL,
    kafka_offset       bigint      NOT NULL,
    kafka_timestamp_ms bigint      NOT NULL,
    run_id             text        NOT NULL,
    written_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS customer_events_run_id ON customer_events (run_id);

-- Events per event_type in each event-time window, per run.
CREATE TABLE IF NOT EXISTS customer_event_counts (
    run_id          text        NOT NULL,
    window_start_ms bigint      NOT NULL,
    window_end_ms   bigint      NOT NULL,
    window_start    timestamptz GENERATED ALWAYS AS (to_timestamp(window_start_ms / 1000.0)) STORED,
    event_type      text        NOT NULL,
    event_count     bigint      NOT NULL,
    written_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, window_start_ms, window_end_ms, event_type)
);

-- Records a stage refused, with the raw bytes and where they were read.
CREATE TABLE IF NOT EXISTS dead_letters (
    stage              text        NOT NULL,
    reason             text        NOT NULL,
    detail             text        NOT NULL,
    payload            bytea,
    kafka_topic        text        NOT NULL,
    kafka_partition    integer     NOT NULL,
    kafka_offset       bigint      NOT NULL,
    kafka_timestamp_ms bigint      NOT NULL,
    kafka_key          bytea,
    run_id             text        NOT NULL,
    written_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset, stage)
);
CREATE INDEX IF NOT EXISTS dead_letters_run_id ON dead_letters (run_id);

-- Every dropped copy of an event, and where the kept copy was read.
CREATE TABLE IF NOT EXISTS duplicate_log (
    event_id        text        NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    kept_partition  integer     NOT NULL,
    kept_offset     bigint      NOT NULL,
    run_id          text        NOT NULL,
    written_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX IF NOT EXISTS duplicate_log_run_id ON duplicate_log (run_id);
