package dev.beamline.xlang;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.beam.fn.harness.ExternalWorkerService;
import org.apache.beam.model.jobmanagement.v1.ArtifactApi;
import org.apache.beam.model.pipeline.v1.RunnerApi;
import org.apache.beam.runners.fnexecution.artifact.ArtifactRetrievalService;
import org.apache.beam.sdk.expansion.service.ExpansionService;
import org.apache.beam.sdk.expansion.service.ExpansionServiceOptions;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.options.PortablePipelineOptions;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.Server;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.Status;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.netty.NettyServerBuilder;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.stub.StreamObserver;

/**
 * Beam's expansion service (and, with {@code --alsoStartLoopbackWorker}, its Java worker) on the
 * loopback address only, serving only the files it was told to stage.
 *
 * <p>Beam's own {@code ExpansionService.main} listens on every interface, unauthenticated, and adds
 * an artifact retrieval service that returns any file path (or URL) a client names: the
 * PostgreSQL password file included, and every file of the machine when the JVM runs as root.
 * This main takes the same arguments ({@code <port> [pipeline options]}), binds the port on the
 * loopback address, and answers a file artifact only when it is one of {@code --filesToStage}.
 */
public final class LoopbackExpansionServer {

  private LoopbackExpansionServer() {}

  public static void main(String[] args) throws IOException, InterruptedException {
    if (args.length < 1) {
      System.err.println("usage: LoopbackExpansionServer <port> [pipeline options]");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    PipelineOptionsFactory.register(ExpansionServiceOptions.class);
    PipelineOptions options =
        PipelineOptionsFactory.fromArgs(Arrays.copyOfRange(args, 1, args.length)).create();
    InetAddress loopback = InetAddress.getLoopbackAddress();
    String address = loopback.getHostAddress() + ":" + port;

    NettyServerBuilder builder =
        NettyServerBuilder.forAddress(new InetSocketAddress(loopback, port))
            .addService(new ExpansionService(options, address))
            .addService(new StagedFilesOnly(stagedFiles(options)));
    if (options.as(ExpansionServiceOptions.class).getAlsoStartLoopbackWorker()) {
      // -Dbeamline.workerHeap=<size>: each worker in a JVM of its own (a long-lived pool);
      // otherwise Beam's pool, a thread of this JVM per worker (one run's service).
      String workerHeap = System.getProperty("beamline.workerHeap");
      builder.addService(
          workerHeap == null
              ? new ExternalWorkerService(options)
              : new ProcessWorkerPool(options, workerHeap));
    }
    Server server = builder.build().start();
    System.out.println("Beamline expansion service listening on " + address);
    Runtime.getRuntime().addShutdownHook(new Thread(server::shutdown));
    server.awaitTermination();
  }

  private static Set<Path> stagedFiles(PipelineOptions options) throws IOException {
    Set<Path> files = new HashSet<>();
    List<String> staged = options.as(PortablePipelineOptions.class).getFilesToStage();
    if (staged != null) {
      for (String file : staged) {
        files.add(Path.of(file).toRealPath());
      }
    }
    return files;
  }

  /** Beam's artifact retrieval, refusing every file that is not a staged one. */
  private static final class StagedFilesOnly extends ArtifactRetrievalService {
    private final Set<Path> allowed;

    StagedFilesOnly(Set<Path> allowed) {
      this.allowed = allowed;
    }

    @Override
    public void getArtifact(
        ArtifactApi.GetArtifactRequest request,
        StreamObserver<ArtifactApi.GetArtifactResponse> responseObserver) {
      if (isStaged(request.getArtifact())) {
        super.getArtifact(request, responseObserver);
      } else {
        responseObserver.onError(
            Status.PERMISSION_DENIED
                .withDescription("only the files this service stages can be retrieved")
                .asException());
      }
    }

    private boolean isStaged(RunnerApi.ArtifactInformation artifact) {
      if (ArtifactRetrievalService.EMBEDDED_ARTIFACT_URN.equals(artifact.getTypeUrn())) {
        return true; // the bytes are in the request itself
      }
      if (!ArtifactRetrievalService.FILE_ARTIFACT_URN.equals(artifact.getTypeUrn())) {
        return false;
      }
      try {
        String path = RunnerApi.ArtifactFilePayload.parseFrom(artifact.getTypePayload()).getPath();
        return allowed.contains(Path.of(path).toRealPath());
      } catch (IOException | RuntimeException e) {
        return false;
      }
    }
  }
}
