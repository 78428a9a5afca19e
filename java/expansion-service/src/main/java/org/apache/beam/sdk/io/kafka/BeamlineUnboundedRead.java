package org.apache.beam.sdk.io.kafka;

import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.NullableCoder;
import org.apache.beam.sdk.io.Read;
import org.apache.beam.sdk.schemas.transforms.Convert;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;

/**
 * An unbounded KafkaIO read through KafkaIO's own {@code UnboundedSource}, with the rows of the
 * Python SDK's {@code ReadFromKafka(with_metadata=True)}.
 *
 * <p>Why: a portable pipeline expands an unbounded {@code KafkaIO.read()} to its splittable DoFn
 * ({@code ReadFromKafkaDoFn}). On the Flink job server assembled here (Beam 2.62.0) with the 2.71
 * Java worker, that DoFn fails every bundle with "Last attempted offset should not be null. No
 * work was claimed in non-empty range" and the job reads nothing. The UnboundedSource reader runs
 * inside Beam's generic SDF wrapper instead, and also brings KafkaIO's idle-partition watermark
 * ({@code CustomTimestampPolicyWithLimitedDelay}).
 *
 * <p>It lives in KafkaIO's package because the source factory and the external record type are
 * package-private there; it uses nothing else.
 */
public final class BeamlineUnboundedRead {

  private BeamlineUnboundedRead() {}

  /** Rows of {@code read}'s records, read through its UnboundedSource. */
  public static PTransform<PBegin, PCollection<Row>> rows(KafkaIO.Read<byte[], byte[]> read) {
    return new Rows(read);
  }

  private static final class Rows extends PTransform<PBegin, PCollection<Row>> {
    private final KafkaIO.Read<byte[], byte[]> read;

    Rows(KafkaIO.Read<byte[], byte[]> read) {
      this.read = read;
    }

    @Override
    public PCollection<Row> expand(PBegin begin) {
      KafkaUnboundedSource<byte[], byte[]> source =
          (KafkaUnboundedSource<byte[], byte[]>)
              read.toBuilder()
                  .setKeyCoder(NullableCoder.of(ByteArrayCoder.of()))
                  .setValueCoder(NullableCoder.of(ByteArrayCoder.of()))
                  .build()
                  .makeSource();
      return begin
          .apply("ReadUnboundedSource", Read.from(source))
          .apply("ToExternalKafkaRecord", ParDo.of(new ToExternalFn()))
          .apply("ToRows", Convert.toRows());
    }
  }

  private static final class ToExternalFn
      extends DoFn<KafkaRecord<byte[], byte[]>, KafkaIO.ByteArrayKafkaRecord> {
    @ProcessElement
    public void process(
        @Element KafkaRecord<byte[], byte[]> record,
        OutputReceiver<KafkaIO.ByteArrayKafkaRecord> out) {
      out.output(KafkaIO.RowsWithMetadata.toExternalKafkaRecord(record));
    }
  }
}
