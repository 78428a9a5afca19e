package dev.beamline.xlang;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.apache.beam.fn.harness.FnHarness;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StartWorkerRequest;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StartWorkerResponse;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StopWorkerRequest;
import org.apache.beam.model.fnexecution.v1.BeamFnApi.StopWorkerResponse;
import org.apache.beam.model.fnexecution.v1.BeamFnExternalWorkerPoolGrpc;
import org.apache.beam.model.fnexecution.v1.ProvisionApi;
import org.apache.beam.model.fnexecution.v1.ProvisionServiceGrpc;
import org.apache.beam.model.pipeline.v1.Endpoints.ApiServiceDescriptor;
import org.apache.beam.sdk.fn.channel.AddHarnessIdInterceptor;
import org.apache.beam.sdk.fn.channel.ManagedChannelFactory;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.util.construction.PipelineOptionsTranslation;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.ManagedChannel;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.stub.StreamObserver;
import org.apache.beam.vendor.grpc.v1p69p0.com.google.protobuf.TextFormat;

/**
 * A Java worker pool that runs each worker in a JVM of its own, ended with its job.
 *
 * <p>Why: Beam's {@code ExternalWorkerService} runs each worker as a thread of the pool's own JVM
 * and ignores {@code StopWorker}. A long-lived pool (the Flink cluster's) then keeps every
 * cancelled job's Kafka readers alive: their offset consumers poll the broker forever (seen: one
 * cancelled job's readers of a deleted topic kept the broker at 94% CPU and the pool at 65%, and
 * starved every other run). Here a worker is a child process ({@link Worker}) that exits when its
 * control stream ends, is killed on {@code StopWorker}, and dies with the pool.
 */
final class ProcessWorkerPool extends BeamFnExternalWorkerPoolGrpc.BeamFnExternalWorkerPoolImplBase {

  private final String optionsJson;
  private final String heap;
  private final Map<String, Process> workers = new ConcurrentHashMap<>();

  ProcessWorkerPool(PipelineOptions options, String heap) {
    this.optionsJson = PipelineOptionsTranslation.toJson(options);
    this.heap = heap;
    Runtime.getRuntime().addShutdownHook(new Thread(this::stopAll));
  }

  @Override
  public void startWorker(
      StartWorkerRequest request, StreamObserver<StartWorkerResponse> responseObserver) {
    String id = request.getWorkerId();
    try {
      Endpoints endpoints = Endpoints.of(request);
      String java = ProcessHandle.current().info().command().orElse("java");
      List<String> command = new ArrayList<>(List.of(java, "-Xmx" + heap, "-cp"));
      command.add(System.getProperty("java.class.path"));
      command.add(Worker.class.getName());
      ProcessBuilder builder = new ProcessBuilder(command).inheritIO();
      Map<String, String> env = builder.environment();
      env.put("HARNESS_ID", id);
      env.put("PIPELINE_OPTIONS", optionsJson);
      env.put("CONTROL_API_SERVICE_DESCRIPTOR", TextFormat.printer().printToString(endpoints.control));
      env.put("LOGGING_API_SERVICE_DESCRIPTOR", TextFormat.printer().printToString(endpoints.logging));
      env.put("RUNNER_CAPABILITIES", String.join(" ", endpoints.capabilities));
      Process process = builder.start();
      workers.put(id, process);
      process.onExit().thenRun(() -> workers.remove(id, process));
      System.out.println("Beamline worker pool: started worker " + id + " as pid " + process.pid());
      responseObserver.onNext(StartWorkerResponse.getDefaultInstance());
    } catch (IOException | RuntimeException e) {
      responseObserver.onNext(
          StartWorkerResponse.newBuilder().setError("cannot start worker " + id + ": " + e).build());
    }
    responseObserver.onCompleted();
  }

  @Override
  public void stopWorker(
      StopWorkerRequest request, StreamObserver<StopWorkerResponse> responseObserver) {
    Process process = workers.remove(request.getWorkerId());
    if (process != null) {
      stop(process);
      System.out.println("Beamline worker pool: stopped worker " + request.getWorkerId());
    }
    responseObserver.onNext(StopWorkerResponse.getDefaultInstance());
    responseObserver.onCompleted();
  }

  private void stopAll() {
    workers.values().forEach(ProcessWorkerPool::stop);
  }

  private static void stop(Process process) {
    process.destroy();
    try {
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroyForcibly();
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
  }

  /** Where a worker connects, from the request and, when the runner offers one, its provision. */
  private static final class Endpoints {
    final ApiServiceDescriptor control;
    final ApiServiceDescriptor logging;
    final List<String> capabilities;

    private Endpoints(
        ApiServiceDescriptor control, ApiServiceDescriptor logging, List<String> capabilities) {
      this.control = control;
      this.logging = logging;
      this.capabilities = capabilities;
    }

    static Endpoints of(StartWorkerRequest request) {
      if (!request.hasProvisionEndpoint()) {
        return new Endpoints(request.getControlEndpoint(), request.getLoggingEndpoint(), List.of());
      }
      // The runner's services know a worker by the id in every call's headers.
      ManagedChannel channel =
          ManagedChannelFactory.createDefault()
              .withInterceptors(List.of(AddHarnessIdInterceptor.create(request.getWorkerId())))
              .forDescriptor(request.getProvisionEndpoint());
      try {
        ProvisionApi.ProvisionInfo info =
            ProvisionServiceGrpc.newBlockingStub(channel)
                .withDeadlineAfter(30, TimeUnit.SECONDS)
                .getProvisionInfo(ProvisionApi.GetProvisionInfoRequest.getDefaultInstance())
                .getInfo();
        return new Endpoints(
            info.hasControlEndpoint() ? info.getControlEndpoint() : request.getControlEndpoint(),
            info.hasLoggingEndpoint() ? info.getLoggingEndpoint() : request.getLoggingEndpoint(),
            List.copyOf(info.getRunnerCapabilitiesList()));
      } finally {
        channel.shutdownNow();
      }
    }
  }

  /**
   * A worker's main: Beam's {@code FnHarness} from the environment, then an exit. The harness
   * returns when its control stream ends; threads it leaves behind (a Kafka reader's offset
   * consumer is not a daemon) would keep the JVM alive.
   */
  static final class Worker {
    private Worker() {}

    public static void main(String[] args) throws Exception {
      int code = 0;
      try {
        FnHarness.main(args);
      } catch (Exception e) {
        e.printStackTrace();
        code = 1;
      }
      System.out.flush();
      System.err.flush();
      Runtime.getRuntime().halt(code);
    }
  }
}
