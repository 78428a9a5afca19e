package dev.beamline.xlang;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
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
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyIn;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes batches of rows to PostgreSQL: each element is one table's batch as CSV text, a Row
 * {@code (table: string, rows: int64, csv: bytes)}, loaded with {@code COPY} into a temporary
 * staging table and merged into the table by the statements the Python side derived
 * ({@code schemas.sql}: {@code staging_ddl}, {@code copy_statement}, {@code merge_statements}).
 *
 * <p>Per bundle, or each time {@code flush_bytes} of CSV are held, one transaction: for each
 * table in name order (the same lock order in every worker), one {@code COPY} of its batches,
 * then its merge statements; then commit. The staging tables are created once per connection
 * and emptied at every commit ({@code ON COMMIT DELETE ROWS}); a rollback discards what was
 * copied. Nothing is held across bundles.
 *
 * <p>The password is never in the graph: the graph names a file or an environment variable,
 * read by the worker when it connects. A transient failure
 * (connection lost, serialization failure, deadlock, server shutting down or starting) rolls
 * the transaction back, reconnects and retries it with backoff; any other failure fails the
 * bundle, which the runner retries. The merges are upserts, so a retry writes the same rows.
 */
public final class PostgresCopyMergeRegistrar implements ExternalTransformRegistrar {

  public static final String URN = "beamline:transform:postgres_copy_merge:v1";

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
    private List<String> tables;
    private List<String> stageDdl;
    private List<String> copySql;
    private List<String> mergeTables;
    private List<String> mergeSql;
    private Long flushBytes;

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

    public void setTables(List<String> tables) {
      this.tables = new ArrayList<>(tables);
    }

    public void setStageDdl(List<String> stageDdl) {
      this.stageDdl = new ArrayList<>(stageDdl);
    }

    public void setCopySql(List<String> copySql) {
      this.copySql = new ArrayList<>(copySql);
    }

    public void setMergeTables(List<String> mergeTables) {
      this.mergeTables = new ArrayList<>(mergeTables);
    }

    public void setMergeSql(List<String> mergeSql) {
      this.mergeSql = new ArrayList<>(mergeSql);
    }

    public void setFlushBytes(Long flushBytes) {
      this.flushBytes = flushBytes;
    }
  }

  private static final class Builder
      implements ExternalTransformBuilder<Configuration, PCollection<Row>, PDone> {
    @Override
    public PTransform<PCollection<Row>, PDone> buildExternal(Configuration c) {
      if (c.jdbcUrl == null || !c.jdbcUrl.startsWith("jdbc:postgresql:")) {
        throw new IllegalArgumentException("postgres_copy_merge needs a jdbc:postgresql: URL");
      }
      if (c.username == null) {
        throw new IllegalArgumentException("postgres_copy_merge needs a username");
      }
      if ((c.passwordFile == null) == (c.passwordEnv == null)) {
        throw new IllegalArgumentException(
            "postgres_copy_merge needs exactly one of password_file and password_env");
      }
      if (c.tables == null
          || c.tables.isEmpty()
          || c.stageDdl == null
          || c.copySql == null
          || c.stageDdl.size() != c.tables.size()
          || c.copySql.size() != c.tables.size()) {
        throw new IllegalArgumentException(
            "postgres_copy_merge needs tables, and a stage_ddl and a copy_sql for each");
      }
      if (c.mergeTables == null
          || c.mergeSql == null
          || c.mergeTables.size() != c.mergeSql.size()) {
        throw new IllegalArgumentException(
            "postgres_copy_merge needs merge_sql statements, each with its table in merge_tables");
      }
      if (c.flushBytes == null || c.flushBytes <= 0) {
        throw new IllegalArgumentException("postgres_copy_merge needs a positive flush_bytes");
      }
      Map<String, TableSql> byTable = new TreeMap<>();
      for (int i = 0; i < c.tables.size(); i++) {
        byTable.put(c.tables.get(i), new TableSql(c.stageDdl.get(i), c.copySql.get(i)));
      }
      if (byTable.size() != c.tables.size()) {
        throw new IllegalArgumentException("postgres_copy_merge: a table is named twice");
      }
      for (int i = 0; i < c.mergeSql.size(); i++) {
        TableSql table = byTable.get(c.mergeTables.get(i));
        if (table == null) {
          throw new IllegalArgumentException(
              "postgres_copy_merge: merge statement for unknown table " + c.mergeTables.get(i));
        }
        table.merges.add(c.mergeSql.get(i));
      }
      for (Map.Entry<String, TableSql> e : byTable.entrySet()) {
        if (e.getValue().merges.isEmpty()) {
          throw new IllegalArgumentException(
              "postgres_copy_merge: no merge statement for table " + e.getKey());
        }
      }
      return new CopyMerge(
          new Spec(
              c.jdbcUrl,
              c.username,
              c.passwordFile,
              c.passwordEnv,
              new LinkedHashMap<>(byTable),
              c.flushBytes));
    }
  }

  /** One table's statements: its staging table, its COPY, its merges in order. */
  private static final class TableSql implements java.io.Serializable {
    final String stageDdl;
    final String copySql;
    final ArrayList<String> merges = new ArrayList<>();

    TableSql(String stageDdl, String copySql) {
      this.stageDdl = stageDdl;
      this.copySql = copySql;
    }
  }

  /** What a worker needs to connect and write: no secret, only where to find it. */
  private static final class Spec implements java.io.Serializable {
    final String jdbcUrl;
    final String username;
    final String passwordFile;
    final String passwordEnv;
    final LinkedHashMap<String, TableSql> tables; // in name order
    final long flushBytes;

    Spec(
        String jdbcUrl,
        String username,
        String passwordFile,
        String passwordEnv,
        LinkedHashMap<String, TableSql> tables,
        long flushBytes) {
      this.jdbcUrl = jdbcUrl;
      this.username = username;
      this.passwordFile = passwordFile;
      this.passwordEnv = passwordEnv;
      this.tables = tables;
      this.flushBytes = flushBytes;
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

  private static final class CopyMerge extends PTransform<PCollection<Row>, PDone> {
    private final Spec spec;

    CopyMerge(Spec spec) {
      this.spec = spec;
    }

    @Override
    public PDone expand(PCollection<Row> batches) {
      Schema schema = batches.getSchema();
      expectField(schema, "table", Schema.TypeName.STRING);
      expectField(schema, "rows", Schema.TypeName.INT64);
      expectField(schema, "csv", Schema.TypeName.BYTES);
      batches.apply("CopyMerge", ParDo.of(new CopyMergeFn(spec)));
      return PDone.in(batches.getPipeline());
    }

    private static void expectField(Schema schema, String name, Schema.TypeName type) {
      if (!schema.hasField(name) || schema.getField(name).getType().getTypeName() != type) {
        throw new IllegalArgumentException(
            "postgres_copy_merge needs batches with a field " + name + " of type " + type
                + ", got " + schema);
      }
    }
  }

  private static final class CopyMergeFn extends DoFn<Row, Void> {
    private static final Logger LOG = LoggerFactory.getLogger(CopyMergeFn.class);
    private static final int ATTEMPTS = 8;
    private static final long FIRST_BACKOFF_MS = 500;
    private static final long MAX_BACKOFF_MS = 10_000;

    private final Spec spec;
    private final Counter written = Metrics.counter(CopyMergeFn.class, "rows_written");
    private final Counter batchesWritten = Metrics.counter(CopyMergeFn.class, "batches_written");
    private final Counter flushes = Metrics.counter(CopyMergeFn.class, "flushes");
    private final Counter retried = Metrics.counter(CopyMergeFn.class, "flushes_retried");
    private transient Connection connection;
    // Table → its CSV batches, held until the flush; rows and bytes held in all.
    private transient Map<String, List<byte[]>> pending;
    private transient long pendingRows;
    private transient long pendingBytes;
    private transient long pendingBatches;

    CopyMergeFn(Spec spec) {
      this.spec = spec;
    }

    @StartBundle
    public void startBundle() {
      pending = new HashMap<>();
      pendingRows = 0;
      pendingBytes = 0;
      pendingBatches = 0;
    }

    @ProcessElement
    public void processElement(@Element Row batch) throws IOException, InterruptedException {
      String table = batch.getString("table");
      if (!spec.tables.containsKey(table)) {
        throw new IllegalArgumentException(
            "a batch for table " + table + ", which this writer does not write");
      }
      byte[] csv = batch.getBytes("csv");
      pending.computeIfAbsent(table, t -> new ArrayList<>()).add(csv);
      pendingRows += batch.getInt64("rows");
      pendingBytes += csv.length;
      pendingBatches++;
      if (pendingBytes >= spec.flushBytes) {
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
      if (pending.isEmpty()) {
        return;
      }
      long backoffMs = FIRST_BACKOFF_MS;
      for (int attempt = 1; ; attempt++) {
        try {
          write();
          written.inc(pendingRows);
          batchesWritten.inc(pendingBatches);
          flushes.inc();
          pending.clear();
          pendingRows = 0;
          pendingBytes = 0;
          pendingBatches = 0;
          return;
        } catch (SQLException e) {
          rollbackQuietly();
          if (!isTransient(e) || attempt == ATTEMPTS) {
            throw new IOException(
                "writing " + pendingRows + " rows of " + pending.keySet() + " failed (SQLSTATE "
                    + e.getSQLState() + "): " + e.getMessage(),
                e);
          }
          retried.inc();
          LOG.warn(
              "writing {} rows failed (SQLSTATE {}), attempt {} of {}; retrying in {} ms: {}",
              pendingRows,
              e.getSQLState(),
              attempt,
              ATTEMPTS,
              backoffMs,
              e.getMessage());
          disconnect();
          Thread.sleep(backoffMs);
          backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
        }
      }
    }

    private void connect() throws SQLException, IOException {
      Properties properties = new Properties();
      properties.setProperty("user", spec.username);
      properties.setProperty("password", spec.password());
      connection = DriverManager.getConnection(spec.jdbcUrl, properties);
      connection.setAutoCommit(false);
      // The staging tables live as long as the connection: created once, committed.
      try (Statement statement = connection.createStatement()) {
        for (TableSql table : spec.tables.values()) {
          statement.execute(table.stageDdl);
        }
      }
      connection.commit();
    }

    private void write() throws SQLException, IOException {
      if (connection == null) {
        connect();
      }
      PGConnection pg = connection.unwrap(PGConnection.class);
      try (Statement statement = connection.createStatement()) {
        for (Map.Entry<String, TableSql> entry : spec.tables.entrySet()) { // name order
          List<byte[]> batches = pending.get(entry.getKey());
          if (batches == null) {
            continue;
          }
          TableSql table = entry.getValue();
          CopyIn copy = pg.getCopyAPI().copyIn(table.copySql);
          try {
            for (byte[] csv : batches) {
              copy.writeToCopy(csv, 0, csv.length);
            }
            copy.endCopy();
          } finally {
            cancelQuietly(copy);
          }
          for (String merge : table.merges) {
            statement.executeUpdate(merge);
          }
        }
      }
      connection.commit();
    }

    /** Ends a COPY that failed half-way, so the rollback can run on its connection. */
    private static void cancelQuietly(CopyIn copy) {
      try {
        if (copy.isActive()) {
          copy.cancelCopy();
        }
      } catch (SQLException ignored) {
        // The COPY's own error is the one reported; the rollback or reconnect follows.
      }
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
      }
    }
  }
}
