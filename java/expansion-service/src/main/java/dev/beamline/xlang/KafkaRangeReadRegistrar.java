package dev.beamline.xlang;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.expansion.ExternalTransformRegistrar;
import org.apache.beam.sdk.io.kafka.BeamlineUnboundedRead;
import org.apache.beam.sdk.io.kafka.KafkaIO;
import org.apache.beam.sdk.io.kafka.TimestampPolicyFactory;
import org.apache.beam.sdk.transforms.ExternalTransformBuilder;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.Row;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.joda.time.Duration;

/**
 * Reads a Kafka topic as batches of the Python SDK's {@code ReadFromKafka(with_metadata=True)}
 * records ({@link BatchKafkaRecords}: one row per bundle of records): either a bounded read of exact per-partition record counts,
 * or, with no partitions given, an unbounded read of the whole topic whose CreateTime watermark
 * allows records to arrive up to {@code max_delay_ms} after their timestamp.
 *
 * <p>Why it exists: {@code ReadFromKafka(max_num_records=N)} splits the source into {@code N /
 * 10,000 + 1} readers (Beam's {@code BoundedReadFromUnboundedSource}) and gives each reader an
 * equal share of N. Partitions rarely hold equal shares, so from 10,000 records on, one reader
 * waits forever for records its partitions do not have while another stops before reading all of
 * its own. Reading each partition with its own count, one KafkaIO read per partition, is exact.
 *
 * <p>Why the delay: {@code ReadFromKafka(timestamp_policy='CreateTime')} uses a delay of zero.
 * On a live topic a partition is caught up between two records most of the time, and KafkaIO
 * then advances its watermark to "now - delay"; with no delay, every record still in flight is
 * behind the watermark when it arrives, and windows drop it as late (seen here: a third of a
 * live feed lost from the window counts).
 *
 * <p>Each read starts where the consumer group in {@code consumer_config} has committed (Beamline
 * commits the run's start offsets before the job), or at {@code auto.offset.reset} without a
 * group. Partitions with a count of 0 are not read. With {@code commit_offsets_in_finalize}, the
 * unbounded read commits its offsets to that group when the runner finalizes a checkpoint
 * (KafkaIO's {@code commitOffsetsInFinalize}), so a job started again without its state resumes
 * where the last completed checkpoint ended.
 */
public final class KafkaRangeReadRegistrar implements ExternalTransformRegistrar {

  public static final String URN = "beamline:transform:kafka_read_partition_counts:v1";

  @Override
  public Map<String, ExternalTransformBuilder<?, ?, ?>> knownBuilderInstances() {
    return Collections.singletonMap(URN, new Builder());
  }

  /** The payload the Python side sends, filled by the expansion service through the setters. */
  public static final class Configuration {
    private String topic;
    private List<Long> partitions = new ArrayList<>();
    private List<Long> counts = new ArrayList<>();
    private Map<String, String> consumerConfig = new HashMap<>();
    private String timestampPolicy = "CreateTime";
    private Long maxReadTimeS;
    private Long maxDelayMs = 0L;
    private Boolean commitOffsetsInFinalize = false;

    public void setTopic(String topic) {
      this.topic = topic;
    }

    public void setPartitions(List<Long> partitions) {
      this.partitions = new ArrayList<>(partitions);
    }

    public void setCounts(List<Long> counts) {
      this.counts = new ArrayList<>(counts);
    }

    public void setConsumerConfig(Map<String, String> consumerConfig) {
      this.consumerConfig = new HashMap<>(consumerConfig);
    }

    public void setTimestampPolicy(String timestampPolicy) {
      this.timestampPolicy = timestampPolicy;
    }

    public void setMaxReadTimeS(Long maxReadTimeS) {
      this.maxReadTimeS = maxReadTimeS;
    }

    public void setMaxDelayMs(Long maxDelayMs) {
      this.maxDelayMs = maxDelayMs == null ? 0L : maxDelayMs;
    }

    public void setCommitOffsetsInFinalize(Boolean commitOffsetsInFinalize) {
      this.commitOffsetsInFinalize = Boolean.TRUE.equals(commitOffsetsInFinalize);
    }
  }

  private static final class Builder
      implements ExternalTransformBuilder<Configuration, PBegin, PCollection<Row>> {

    @Override
    public PTransform<PBegin, PCollection<Row>> buildExternal(Configuration config) {
      if (config.topic == null || config.partitions.size() != config.counts.size()) {
        throw new IllegalArgumentException(
            "kafka_read_partition_counts needs a topic and one count per partition");
      }
      return new ReadPartitionCounts(config);
    }
  }

  private static final class ReadPartitionCounts extends PTransform<PBegin, PCollection<Row>> {
    private final Configuration config;

    ReadPartitionCounts(Configuration config) {
      this.config = config;
    }

    private KafkaIO.Read<byte[], byte[]> baseRead() {
      return KafkaIO.<byte[], byte[]>read()
          .withConsumerConfigUpdates(new HashMap<>(config.consumerConfig))
          .withKeyDeserializer(ByteArrayDeserializer.class)
          .withValueDeserializer(ByteArrayDeserializer.class)
          .withTimestampPolicyFactory(timestampPolicy(config.timestampPolicy, config.maxDelayMs));
    }

    @Override
    public PCollection<Row> expand(PBegin input) {
      if (config.partitions.isEmpty()) {
        KafkaIO.Read<byte[], byte[]> read = baseRead().withTopic(config.topic);
        if (config.maxReadTimeS != null) {
          read = read.withMaxReadTime(Duration.standardSeconds(config.maxReadTimeS));
        }
        if (config.commitOffsetsInFinalize) {
          read = read.commitOffsetsInFinalize(); // KafkaIO refuses it without a group.id
        }
        return input
            .apply("ReadTopic", BeamlineUnboundedRead.rows(read))
            .apply("BatchRecords", new BatchKafkaRecords());
      }
      PCollectionList<Row> reads = PCollectionList.empty(input.getPipeline());
      for (int i = 0; i < config.partitions.size(); i++) {
        long partition = config.partitions.get(i);
        long count = config.counts.get(i);
        if (count <= 0) {
          continue;
        }
        KafkaIO.Read<byte[], byte[]> read =
            baseRead()
                .withTopicPartitions(
                    Collections.singletonList(new TopicPartition(config.topic, (int) partition)))
                .withMaxNumRecords(count);
        if (config.maxReadTimeS != null) {
          read = read.withMaxReadTime(Duration.standardSeconds(config.maxReadTimeS));
        }
        reads = reads.and(input.apply("ReadPartition" + partition, read.externalWithMetadata()));
      }
      if (reads.size() == 0) {
        throw new IllegalArgumentException("kafka_read_partition_counts: no partition to read");
      }
      return reads
          .apply("FlattenPartitions", Flatten.pCollections())
          .apply("BatchRecords", new BatchKafkaRecords());
    }

    private static TimestampPolicyFactory<byte[], byte[]> timestampPolicy(
        String name, long maxDelayMs) {
      switch (name) {
        case "CreateTime":
          return TimestampPolicyFactory.withCreateTime(Duration.millis(maxDelayMs));
        case "LogAppendTime":
          return TimestampPolicyFactory.withLogAppendTime();
        case "ProcessingTime":
          return TimestampPolicyFactory.withProcessingTime();
        default:
          throw new IllegalArgumentException(
              "timestamp_policy must be CreateTime, LogAppendTime or ProcessingTime, not " + name);
      }
    }
  }
}
