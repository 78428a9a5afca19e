package dev.beamline.xlang;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.NullableCoder;
import org.apache.beam.sdk.expansion.ExternalTransformRegistrar;
import org.apache.beam.sdk.io.kafka.KafkaIO;
import org.apache.beam.sdk.io.kafka.ProducerRecordCoder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ExternalTransformBuilder;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PDone;
import org.apache.beam.sdk.values.Row;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Writes rows {@code (key: bytes?, value: bytes?, headers: map<string, string>)} to one Kafka
 * topic, headers included.
 *
 * <p>The Python SDK's {@code WriteToKafka} takes key/value pairs only, so a dead-letter topic
 * could not carry the coordinates and reason of each record as headers, which is where Kafka
 * tooling (Kafka Connect's own dead-letter queues among them) puts them. This transform maps each
 * row to a {@code ProducerRecord} with UTF-8 headers and hands it to {@code
 * KafkaIO.writeRecords()}.
 */
public final class KafkaHeadersWriteRegistrar implements ExternalTransformRegistrar {

  public static final String URN = "beamline:transform:kafka_write_with_headers:v1";

  @Override
  public Map<String, ExternalTransformBuilder<?, ?, ?>> knownBuilderInstances() {
    return Collections.singletonMap(URN, new Builder());
  }

  /** The payload the Python side sends, filled by the expansion service through the setters. */
  public static final class Configuration {
    private String topic;
    private String bootstrapServers;
    private Map<String, String> producerConfig = new HashMap<>();

    public void setTopic(String topic) {
      this.topic = topic;
    }

    public void setBootstrapServers(String bootstrapServers) {
      this.bootstrapServers = bootstrapServers;
    }

    public void setProducerConfig(Map<String, String> producerConfig) {
      this.producerConfig = new HashMap<>(producerConfig);
    }
  }

  private static final class Builder
      implements ExternalTransformBuilder<Configuration, PCollection<Row>, PDone> {
    @Override
    public PTransform<PCollection<Row>, PDone> buildExternal(Configuration config) {
      if (config.topic == null || config.bootstrapServers == null) {
        throw new IllegalArgumentException(
            "kafka_write_with_headers needs a topic and bootstrap servers");
      }
      return new WriteWithHeaders(config);
    }
  }

  private static final class WriteWithHeaders extends PTransform<PCollection<Row>, PDone> {
    private final Configuration config;

    WriteWithHeaders(Configuration config) {
      this.config = config;
    }

    @Override
    public PDone expand(PCollection<Row> rows) {
      Map<String, Object> producerConfig = new HashMap<>(config.producerConfig);
      return rows.apply("ToProducerRecord", ParDo.of(new ToProducerRecordFn(config.topic)))
          .setCoder(
              ProducerRecordCoder.of(
                  NullableCoder.of(ByteArrayCoder.of()), NullableCoder.of(ByteArrayCoder.of())))
          .apply(
              "WriteRecords",
              KafkaIO.<byte[], byte[]>writeRecords()
                  .withBootstrapServers(config.bootstrapServers)
                  .withProducerConfigUpdates(producerConfig)
                  .withTopic(config.topic)
                  .withKeySerializer(ByteArraySerializer.class)
                  .withValueSerializer(ByteArraySerializer.class));
    }
  }

  private static final class ToProducerRecordFn extends DoFn<Row, ProducerRecord<byte[], byte[]>> {
    private final String topic;

    ToProducerRecordFn(String topic) {
      this.topic = topic;
    }

    @ProcessElement
    public void process(@Element Row row, OutputReceiver<ProducerRecord<byte[], byte[]>> out) {
      List<Header> headers = new ArrayList<>();
      Map<String, String> values = row.getMap("headers");
      if (values != null) {
        values.forEach(
            (name, value) ->
                headers.add(
                    new RecordHeader(
                        name, value == null ? null : value.getBytes(StandardCharsets.UTF_8))));
      }
      out.output(
          new ProducerRecord<>(
              topic, null, null, row.getBytes("key"), row.getBytes("value"), headers));
    }
  }
}
