package dev.beamline.xlang;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.ServiceLoader;
import org.apache.beam.model.pipeline.v1.SchemaApi;
import org.apache.beam.sdk.coders.RowCoder;
import org.apache.beam.sdk.expansion.ExternalTransformRegistrar;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.SchemaTranslation;
import org.apache.beam.sdk.schemas.io.SchemaIO;
import org.apache.beam.sdk.schemas.io.SchemaIOProvider;
import org.apache.beam.sdk.transforms.ExternalTransformBuilder;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.POutput;
import org.apache.beam.sdk.values.Row;

/**
 * Registers the schema-IO URNs that the Python SDK's {@code WriteToJdbc} and {@code ReadFromJdbc}
 * expand through ({@code beam:transform:org.apache.beam:schemaio_<id>_{read,write}:v1}), for
 * every {@link SchemaIOProvider} on the classpath.
 *
 * <p>Beam ships this mapping in its {@code schemaio-expansion-service} artifact, which is not on
 * the Maven Central that Beamline's machines reach. Without it an expansion request for {@code
 * WriteToJdbc} fails with "Unknown urn". This class does the same job in a few lines: decode the
 * configuration row with the provider's own configuration schema, build the provider's
 * {@link SchemaIO}, and hand back its reader or writer.
 *
 * <p>The configuration arrives as a row encoded without its schema, so the Python SDK and the
 * Java provider must come from the same Beam release.
 */
public final class SchemaIoRegistrar implements ExternalTransformRegistrar {

  private static final String URN_FORMAT = "beam:transform:org.apache.beam:schemaio_%s_%s:v1";

  @Override
  public Map<String, ExternalTransformBuilder<?, ?, ?>> knownBuilderInstances() {
    Map<String, ExternalTransformBuilder<?, ?, ?>> builders = new HashMap<>();
    for (SchemaIOProvider provider : ServiceLoader.load(SchemaIOProvider.class)) {
      builders.put(String.format(URN_FORMAT, provider.identifier(), "read"), new Reader(provider));
      builders.put(String.format(URN_FORMAT, provider.identifier(), "write"), new Writer(provider));
    }
    return builders;
  }

  /**
   * The payload the Python SDK sends: a location (a table name for JDBC), the provider's
   * configuration as an encoded row, and an optional data schema as a serialized schema proto.
   * The expansion service fills it through these setters, by field name.
   */
  public static final class Configuration {
    private String location;
    private byte[] config;
    private byte[] dataSchema;

    public void setLocation(String location) {
      this.location = location;
    }

    public void setConfig(byte[] config) {
      this.config = config;
    }

    public void setDataSchema(byte[] dataSchema) {
      this.dataSchema = dataSchema;
    }

    SchemaIO open(SchemaIOProvider provider) {
      try {
        Row configRow =
            RowCoder.of(provider.configurationSchema()).decode(new ByteArrayInputStream(config));
        Schema schema =
            dataSchema == null
                ? null
                : SchemaTranslation.schemaFromProto(SchemaApi.Schema.parseFrom(dataSchema));
        return provider.from(location, configRow, schema);
      } catch (IOException e) {
        throw new IllegalArgumentException(
            "Cannot decode the " + provider.identifier() + " configuration: are the Python SDK"
                + " and this expansion service from the same Beam release?",
            e);
      }
    }
  }

  private static final class Reader
      implements ExternalTransformBuilder<Configuration, PBegin, PCollection<Row>> {
    private final SchemaIOProvider provider;

    Reader(SchemaIOProvider provider) {
      this.provider = provider;
    }

    @Override
    public PTransform<PBegin, PCollection<Row>> buildExternal(Configuration configuration) {
      return configuration.open(provider).buildReader();
    }
  }

  private static final class Writer
      implements ExternalTransformBuilder<Configuration, PCollection<Row>, POutput> {
    private final SchemaIOProvider provider;

    Writer(SchemaIOProvider provider) {
      this.provider = provider;
    }

    @Override
    @SuppressWarnings("unchecked")
    public PTransform<PCollection<Row>, POutput> buildExternal(Configuration configuration) {
      return (PTransform<PCollection<Row>, POutput>) configuration.open(provider).buildWriter();
    }
  }
}
