package dev.beamline.xlang;

import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.FieldType;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.transforms.windowing.GlobalWindow;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;
import org.joda.time.Duration;
import org.joda.time.Instant;

/**
 * Kafka records (the rows of {@code ReadFromKafka(with_metadata=True)}) as batches: one row per
 * bundle, or per {@link #MAX_RECORDS} records or {@link #MAX_BYTES} of keys and values, holding
 * the records' coordinates, timestamps, keys and values as parallel arrays.
 *
 * <p>Why: every element a portable runner hands from the Java worker to the runner and on to the
 * Python worker costs a fixed amount (encode, data-plane frame, decode, a DoFn call on each side)
 * whatever its size; a batch pays it once for up to {@link #MAX_RECORDS} records. The Python side
 * ({@code transforms/kafka_io.py}) turns a batch back into its records, each at its own Kafka
 * timestamp.
 *
 * <p>Nothing is kept across bundles: a batch is emitted when full or when the bundle finishes, so
 * a checkpoint (taken between bundles) never holds a record here. A batch is stamped with the
 * earliest timestamp it holds, and so holds the watermark no later than its oldest record would
 * have; its records are in the global window, as the read's are.
 */
public final class BatchKafkaRecords extends PTransform<PCollection<Row>, PCollection<Row>> {

  static final int MAX_RECORDS = 2000;
  static final long MAX_BYTES = 8L << 20;

  /** The batch row: parallel arrays, one item per record. */
  public static final Schema SCHEMA =
      Schema.builder()
          .addStringField("topic")
          .addArrayField("partitions", FieldType.INT32)
          .addArrayField("offsets", FieldType.INT64)
          .addArrayField("timestamps", FieldType.INT64)
          .addArrayField("keys", FieldType.BYTES.withNullable(true))
          .addArrayField("values", FieldType.BYTES.withNullable(true))
          .build();

  @Override
  public PCollection<Row> expand(PCollection<Row> records) {
    return records.apply("BatchPerBundle", ParDo.of(new BatchFn())).setRowSchema(SCHEMA);
  }

  private static final class BatchFn extends DoFn<Row, Row> {
    private transient Open open;

    @StartBundle
    public void startBundle() {
      open = null;
    }

    @ProcessElement
    public void process(@Element Row record, @Timestamp Instant timestamp, OutputReceiver<Row> out) {
      String topic = record.getString("topic");
      if (open != null && !open.topic.equals(topic)) {
        out.outputWithTimestamp(open.toRow(), open.earliest);
        open = null;
      }
      if (open == null) {
        open = new Open(topic);
      }
      open.add(record, timestamp);
      if (open.offsets.size() >= MAX_RECORDS || open.bytes >= MAX_BYTES) {
        out.outputWithTimestamp(open.toRow(), open.earliest);
        open = null;
      }
    }

    @FinishBundle
    public void finishBundle(FinishBundleContext context) {
      if (open != null) {
        context.output(open.toRow(), open.earliest, GlobalWindow.INSTANCE);
        open = null;
      }
    }

    /** A batch's earliest timestamp may precede the element that completes it. */
    @Override
    @SuppressWarnings("deprecation")
    public Duration getAllowedTimestampSkew() {
      return Duration.millis(BoundedWindow.TIMESTAMP_MAX_VALUE.getMillis());
    }
  }

  private static final class Open {
    final String topic;
    final List<Integer> partitions = new ArrayList<>();
    final List<Long> offsets = new ArrayList<>();
    final List<Long> timestamps = new ArrayList<>();
    final List<byte[]> keys = new ArrayList<>();
    final List<byte[]> values = new ArrayList<>();
    Instant earliest = BoundedWindow.TIMESTAMP_MAX_VALUE;
    long bytes;

    Open(String topic) {
      this.topic = topic;
    }

    void add(Row record, Instant timestamp) {
      byte[] key = record.getBytes("key");
      byte[] value = record.getBytes("value");
      partitions.add(record.getInt32("partition"));
      offsets.add(record.getInt64("offset"));
      timestamps.add(record.getInt64("timestamp"));
      keys.add(key);
      values.add(value);
      bytes += (key == null ? 0 : key.length) + (value == null ? 0 : value.length);
      if (timestamp.isBefore(earliest)) {
        earliest = timestamp;
      }
    }

    Row toRow() {
      return Row.withSchema(SCHEMA)
          .withFieldValue("topic", topic)
          .withFieldValue("partitions", partitions)
          .withFieldValue("offsets", offsets)
          .withFieldValue("timestamps", timestamps)
          .withFieldValue("keys", keys)
          .withFieldValue("values", values)
          .build();
    }
  }
}
