package dev.beamline.xlang;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.beam.sdk.expansion.ExternalTransformRegistrar;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ExternalTransformBuilder;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PDone;
import org.apache.beam.sdk.values.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes schema'd rows to PostgreSQL with one parameterised statement (an upsert), in batches
 * that end with their bundle.
 *
 * <p>Why not {@code WriteToJdbc}: (1) its payload carries the password, so the secret travels
 * in the expansion request, the expanded pipeline every runner receives and the expansion
 * service's debug log; here the graph names a file or an environment variable, read by the
 * worker when it first connects. (2) On an unbounded input JdbcIO batches through {@code
 * GroupIntoBatches} on one key with a 200 ms processing-time flush; on Prism 2.71 that timer can
 * fail to fire once input stops, and the last rows of a run stayed buffered (seen: 59 events and
 * 1 dead letter of a streaming test, never written). A batch that ends with its bundle needs no
 * timer and no shuffle, and a runner that finishes bundles before a checkpoint (Flink with {@code
 * --finish_bundle_before_checkpointing}) has every row committed by then.
 *
 * <p>A batch is one transaction. A transient failure (connection lost, serialization failure,
 * deadlock, server shutting down or starting) rolls it back, reconnects and retries it with
 * backoff; any other failure fails the bundle, which the runner retries. The statement must be
 * idempotent (an upsert) because a retried bundle writes its rows again.
 */
public final class PostgresUpsertRegistrar implements ExternalTransformRegistrar {

  public static final String URN = "beamline:transform:postgres_upsert:v1";

  private static final Map<Schema.TypeName, Integer> SQL_TYPES =
      new EnumMap<>(Schema.TypeName.class);

  static {
    SQL_TYPES.put(Schema.TypeName.STRING, Types.VARCHAR);
    SQL_TYPES.put(Schema.TypeName.INT16, Types.SMALLINT);
    SQL_TYPES.put(Schema.TypeName.INT32, Types.INTEGER);
    SQL_TYPES.put(Schema.TypeName.INT64, Types.BIGINT);
    SQL_TYPES.put(Schema.TypeName.DOUBLE, Types.DOUBLE);
    SQL_TYPES.put(Schema.TypeName.FLOAT, Types.REAL);
    SQL_TYPES.put(Schema.TypeName.BOOLEAN, Types.BOOLEAN);
    SQL_TYPES.put(Schema.TypeName.BYTES, Types.BINARY);
  }

  @Override
  public Map<String, ExternalTransformBuilder<?, ?, ?>> knownBuilderInstances() {
    return Collections.singletonMap(URN, new Builder());
  }

  /** The payload the Python side sends, filled by the expansion service through the setters. */
  public static final class Configuration {
    private String jdbcUrl;
    private String username;
    private String passwordFile;
    private String passwordEnv;
    private String statement;
    private Long batchSize;

    public void setJdbcUrl(String jdbcUrl) {
      this.jdbcUrl = jdbcUrl;
    }

    public void setUsername(String username) {
      this.username = username;
    }

    public void setPasswordFile(String passwordFile) {
      this.passwordFile = passwordFile;
    }

    public void setPasswordEnv(String passwordEnv) {
      this.passwordEnv = passwordEnv;
    }

    public void setStatement(String statement) {
      this.statement = statement;
    }

    public void setBatchSize(Long batchSize) {
      this.batchSize = batchSize;
    }
  }

  private static final class Builder
      implements ExternalTransformBuilder<Configuration, PCollection<Row>, PDone> {
    @Override
    public PTransform<PCollection<Row>, PDone> buildExternal(Configuration c) {
      if (c.jdbcUrl == null || !c.jdbcUrl.startsWith("jdbc:postgresql:")) {
        throw new IllegalArgumentException("postgres_upsert needs a jdbc:postgresql: URL");
      }
      if (c.username == null || c.statement == null || c.statement.isEmpty()) {
        throw new IllegalArgumentException("postgres_upsert needs a username and a statement");
      }
      if ((c.passwordFile == null) == (c.passwordEnv == null)) {
        throw new IllegalArgumentException(
            "postgres_upsert needs exactly one of password_file and password_env");
      }
      if (c.batchSize == null || c.batchSize <= 0) {
        throw new IllegalArgumentException("postgres_upsert needs a positive batch_size");
      }
      return new Upsert(
          new Spec(
              c.jdbcUrl,
              c.username,
              c.passwordFile,
              c.passwordEnv,
              c.statement,
              c.batchSize.intValue()));
    }
  }

  /** What a worker needs to connect and write: no secret, only where to find it. */
  private static final class Spec implements java.io.Serializable {
    final String jdbcUrl;
    final String username;
    final String passwordFile;
    final String passwordEnv;
    final String statement;
    final int batchSize;

    Spec(
        String jdbcUrl,
        String username,
        String passwordFile,
        String passwordEnv,
        String statement,
        int batchSize) {
      this.jdbcUrl = jdbcUrl;
      this.username = username;
      this.passwordFile = passwordFile;
      this.passwordEnv = passwordEnv;
      this.statement = statement;
      this.batchSize = batchSize;
    }

    String password() throws IOException {
      String value;
      String where;
      if (passwordFile != null) {
        where = "file " + passwordFile;
        Path path = Path.of(passwordFile);
        value = Files.isReadable(path) ? Files.readString(path, StandardCharsets.UTF_8) : null;
      } else {
        where = "environment variable " + passwordEnv;
        value = System.getenv(passwordEnv);
      }
      if (value == null || value.strip().isEmpty()) {
        throw new IOException("no PostgreSQL password in the " + where + " on this worker");
      }
      return value.strip();
    }
  }

  private static final class Upsert extends PTransform<PCollection<Row>, PDone> {
    private final Spec spec;

    Upsert(Spec spec) {
      this.spec = spec;
    }

    @Override
    public PDone expand(PCollection<Row> rows) {
      // The SQL type of each column, in field order: resolved (and checked) once here,
      // not per row on the worker.
      List<Schema.Field> fields = rows.getSchema().getFields();
      int[] sqlTypes = new int[fields.size()];
      for (int i = 0; i < sqlTypes.length; i++) {
        Integer sqlType = SQL_TYPES.get(fields.get(i).getType().getTypeName());
        if (sqlType == null) {
          throw new IllegalArgumentException(
              "postgres_upsert cannot bind field " + fields.get(i).getName() + " of type "
                  + fields.get(i).getType());
        }
        sqlTypes[i] = sqlType;
      }
      rows.apply("Upsert", ParDo.of(new UpsertFn(spec, sqlTypes)));
      return PDone.in(rows.getPipeline());
    }
  }

  private static final class UpsertFn extends DoFn<Row, Void> {
    private static final Logger LOG = LoggerFactory.getLogger(UpsertFn.class);
    private static final int ATTEMPTS = 8;
    private static final long FIRST_BACKOFF_MS = 500;
    private static final long MAX_BACKOFF_MS = 10_000;

    private final Spec spec;
    private final int[] sqlTypes;
    private final Counter written = Metrics.counter(UpsertFn.class, "rows_written");
    private final Counter retried = Metrics.counter(UpsertFn.class, "batches_retried");
    private transient Connection connection;
    private transient PreparedStatement prepared;
    private transient List<Row> batch;

    UpsertFn(Spec spec, int[] sqlTypes) {
      this.spec = spec;
      this.sqlTypes = sqlTypes;
    }

    @StartBundle
    public void startBundle() {
      batch = new ArrayList<>();
    }

    @ProcessElement
    public void processElement(@Element Row row) throws IOException, InterruptedException {
      batch.add(row);
      if (batch.size() >= spec.batchSize) {
        flush();
      }
    }

    @FinishBundle
    public void finishBundle() throws IOException, InterruptedException {
      flush();
    }

    @Teardown
    public void teardown() {
      disconnect();
    }

    private void flush() throws IOException, InterruptedException {
      if (batch.isEmpty()) {
        return;
      }
      long backoffMs = FIRST_BACKOFF_MS;
      for (int attempt = 1; ; attempt++) {
        try {
          write();
          written.inc(batch.size());
          batch.clear();
          return;
        } catch (SQLException e) {
          SQLException cause = rootOf(e);
          rollbackQuietly();
          if (!isTransient(cause) || attempt == ATTEMPTS) {
            throw new IOException(
                "writing " + batch.size() + " rows failed (SQLSTATE " + cause.getSQLState()
                    + "): " + cause.getMessage(),
                e);
          }
          retried.inc();
          LOG.warn(
              "writing {} rows failed (SQLSTATE {}), attempt {} of {}; retrying in {} ms: {}",
              batch.size(),
              cause.getSQLState(),
              attempt,
              ATTEMPTS,
              backoffMs,
              cause.getMessage());
          disconnect();
          Thread.sleep(backoffMs);
          backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
        }
      }
    }

    private void write() throws SQLException, IOException {
      if (connection == null) {
        Properties properties = new Properties();
        properties.setProperty("user", spec.username);
        properties.setProperty("password", spec.password());
        connection = DriverManager.getConnection(spec.jdbcUrl, properties);
        connection.setAutoCommit(false);
        prepared = connection.prepareStatement(spec.statement);
      }
      for (Row row : batch) {
        bind(row);
        prepared.addBatch();
      }
      prepared.executeBatch();
      connection.commit();
    }

    private void bind(Row row) throws SQLException {
      for (int i = 0; i < sqlTypes.length; i++) {
        Object value = row.getValue(i);
        if (value == null) {
          prepared.setNull(i + 1, sqlTypes[i]);
        } else if (sqlTypes[i] == Types.BINARY) {
          prepared.setBytes(i + 1, (byte[]) value);
        } else {
          prepared.setObject(i + 1, value, sqlTypes[i]);
        }
      }
    }

    private static SQLException rootOf(SQLException e) {
      // A failed batch reports the first failing statement's error as its next exception.
      SQLException next = e instanceof BatchUpdateException ? e.getNextException() : null;
      return next != null ? next : e;
    }

    /** Connection lost or refused, serialization failure, deadlock, shutdown, start-up. */
    private static boolean isTransient(SQLException e) {
      String state = e.getSQLState();
      return state != null
          && (state.startsWith("08")
              || state.equals("40001")
              || state.equals("40P01")
              || state.equals("57P01")
              || state.equals("57P02")
              || state.equals("57P03")
              || state.equals("53300"));
    }

    private void rollbackQuietly() {
      try {
        if (connection != null) {
          connection.rollback();
        }
      } catch (SQLException ignored) {
        // The connection is closed below; the retry opens a new one.
      }
    }

    private void disconnect() {
      try {
        if (connection != null) {
          connection.close();
        }
      } catch (SQLException ignored) {
        // Closing a broken connection: nothing left to release.
      } finally {
        connection = null;
        prepared = null;
      }
    }
  }
}
