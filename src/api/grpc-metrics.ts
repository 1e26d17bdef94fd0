// grpc_server_* metrics as go-grpc-prometheus reports them for etcd: calls
// started and handled (with the gRPC code they ended with), messages received
// and sent, per type, service and method. One interceptor, run by both
// transports (Connect and the gRPC fast path), outermost so it sees every
// answer, auth and learner refusals included. A stream the client gives up on
// ends Canceled, as grpc-go's does.
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Counter, type Registry } from "prom-client";
import { EtcdError, GrpcCode } from "../errors.ts";

// In the order Go's Prometheus client prints them (sorted by name), so each series reads byte for byte as etcd's.
const labelNames = ["grpc_method", "grpc_service", "grpc_type"] as const;

/** go-grpc-prometheus's grpc_type for each kind of method. */
const grpcTypes = { unary: "unary", client_streaming: "client_stream", server_streaming: "server_stream", bidi_streaming: "bidi_stream" } as const;

/** Every code, named as grpc-go's codes.Code String() names them (our enum's names are the same; it has no OK). */
const codeNames = ["OK", ...Object.values(GrpcCode).filter((value): value is string => typeof value === "string")];

/** One method's counts, kept as plain numbers and handed to prom-client when /metrics is read. */
interface MethodSeries {
  labels: readonly [string, string, string];
  started: number;
  received: number;
  sent: number;
  /** By code name: every code of codeNames, from zero. */
  handled: Map<string, number>;
}

/** go-grpc-prometheus's handling-time buckets (prometheus.DefBuckets), for --metrics extensive. */
const handlingSecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface GrpcMetricsOptions {
  /** grpc_server_handling_seconds, as etcd's --metrics extensive turns it on (EnableHandlingTimeHistogram). */
  handlingTimes?: boolean;
}

export function grpcMetricsInterceptor(registry: Registry, services: readonly DescService[], options: GrpcMetricsOptions = {}): Interceptor {
  const registers = [registry];
  // prom-client hashes and checks the labels of every inc(), about a
  // microsecond each, four per call; the counts live here instead, and each
  // counter reads them back when it is collected.
  // By the method's descriptor: the services' own, which every transport calls with.
  const seriesByMethod = new Map<DescMethod, MethodSeries>();
  const counters: Array<{ name: string; help: string; withCode: boolean; counts: (series: MethodSeries) => Array<[string[], number]> }> = [
    { name: "grpc_server_started_total", help: "Total number of RPCs started on the server.", withCode: false, counts: (series) => [[[...series.labels], series.started]] },
    {
      name: "grpc_server_handled_total",
      help: "Total number of RPCs completed on the server, regardless of success or failure.",
      withCode: true,
      counts: (series) => [...series.handled].map(([code, count]) => [[code, ...series.labels], count]),
    },
    { name: "grpc_server_msg_received_total", help: "Total number of RPC stream messages received on the server.", withCode: false, counts: (series) => [[[...series.labels], series.received]] },
    { name: "grpc_server_msg_sent_total", help: "Total number of gRPC stream messages sent by the server.", withCode: false, counts: (series) => [[[...series.labels], series.sent]] },
  ];
  for (const { name, help, withCode, counts } of counters) {
    const names = withCode ? ["grpc_code", ...labelNames] : [...labelNames];
    new Counter({
      name,
      help,
      labelNames: names,
      registers,
      collect() {
        this.reset();
        for (const series of seriesByMethod.values()) {
          for (const [values, count] of counts(series)) this.inc(Object.fromEntries(names.map((label, index) => [label, values[index] as string])), count);
        }
      },
    });
  }
  const seriesOf = (service: DescService, method: DescMethod): MethodSeries => {
    let found = seriesByMethod.get(method);
    if (found === undefined) {
      found = {
        labels: [method.name, service.typeName, grpcTypes[method.methodKind]],
        started: 0,
        received: 0,
        sent: 0,
        handled: new Map(codeNames.map((code) => [code, 0])),
      };
      seriesByMethod.set(method, found);
    }
    return found;
  };
  // As go-grpc-prometheus registers a server: every method's series exist, at zero.
  for (const service of services) for (const method of service.methods) seriesOf(service, method);
  const handlingTimes = options.handlingTimes === true ? handlingHistogram(registry, seriesByMethod) : undefined;

  return (next) => async (request) => {
    const series = seriesOf(request.service, request.method);
    series.started++;
    const startedMs = handlingTimes === undefined ? 0 : performance.now();
    let ended = false;
    const end = (code: string) => {
      if (ended) return;
      ended = true;
      series.handled.set(code, (series.handled.get(code) ?? 0) + 1);
      handlingTimes?.(series, (performance.now() - startedMs) / 1000);
    };
    // A call aborted under the stream ended by its deadline, or else because its
    // client went away, however the transport words that (Connect's node
    // adapter aborts some with Internal): grpc-go counts it Canceled.
    const abortedCode = () => (codeNameOf(request.signal.reason, GrpcCode.Canceled) === "DeadlineExceeded" ? "DeadlineExceeded" : "Canceled");
    const endQuietly = () => end(request.signal.aborted ? abortedCode() : "OK");
    if (request.stream) request = { ...request, message: counted(request.message, () => series.received++) };
    else series.received++;
    let response;
    try {
      response = await next(request);
    } catch (error) {
      end(codeNameOf(error, GrpcCode.Unknown));
      throw error;
    }
    if (!response.stream) {
      series.sent++;
      end("OK");
      return response;
    }
    const messages = response.message;
    return {
      ...response,
      message: (async function* () {
        try {
          for await (const message of messages) {
            series.sent++;
            yield message;
          }
        } catch (error) {
          end(request.signal.aborted ? abortedCode() : codeNameOf(error, GrpcCode.Unknown));
          throw error;
        } finally {
          // Done, or stopped by the transport (return()) because the call went away.
          endQuietly();
        }
      })(),
    };
  };
}

/**
 * grpc_server_handling_seconds: every method's series from zero, as
 * go-grpc-prometheus initializes them, observed when a call ends. Kept as
 * plain counts and printed as Go's client prints a histogram (series sorted
 * by their labels, `le` last): prom-client's own puts `le` first on series
 * made at zero.
 */
function handlingHistogram(registry: Registry, seriesByMethod: ReadonlyMap<DescMethod, MethodSeries>): (series: MethodSeries, seconds: number) => void {
  const name = "grpc_server_handling_seconds";
  const help = "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.";
  const counts = new Map<MethodSeries, { inBucket: number[]; sum: number; count: number }>();
  const countsOf = (series: MethodSeries) => {
    let found = counts.get(series);
    if (found === undefined) counts.set(series, (found = { inBucket: handlingSecondsBuckets.map(() => 0), sum: 0, count: 0 }));
    return found;
  };
  registry.registerMetric({
    name,
    get: async () => {
      const values: Array<{ metricName: string; labels: Record<string, string>; value: number }> = [];
      const ordered = [...seriesByMethod.values()].sort((a, b) => compareLabels(a.labels, b.labels));
      for (const series of ordered) {
        const labels = { grpc_method: series.labels[0], grpc_service: series.labels[1], grpc_type: series.labels[2] };
        const { inBucket, sum, count } = countsOf(series);
        let cumulative = 0;
        handlingSecondsBuckets.forEach((bound, index) => {
          cumulative += inBucket[index] as number;
          values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(bound) }, value: cumulative });
        });
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: count });
        values.push({ metricName: `${name}_sum`, labels, value: sum });
        values.push({ metricName: `${name}_count`, labels, value: count });
      }
      return { name, help, type: "histogram", values, aggregator: "sum" };
    },
  } as unknown as Parameters<Registry["registerMetric"]>[0]);
  return (series, seconds) => {
    const found = countsOf(series);
    const index = handlingSecondsBuckets.findIndex((bound) => seconds <= bound);
    if (index >= 0) found.inBucket[index] = (found.inBucket[index] as number) + 1;
    found.sum += seconds;
    found.count++;
  };
}

function compareLabels(a: readonly string[], b: readonly string[]): number {
  for (let index = 0; index < a.length; index++) {
    const order = (a[index] as string).localeCompare(b[index] as string, "en");
    if (order !== 0) return order;
  }
  return 0;
}

async function* counted<T>(messages: AsyncIterable<T>, count: () => void): AsyncIterable<T> {
  for await (const message of messages) {
    count();
    yield message;
  }
}

function codeNameOf(error: unknown, otherwise: GrpcCode): string {
  const code = error instanceof ConnectError || error instanceof EtcdError ? (error.code as number) : otherwise;
  return GrpcCode[code] ?? GrpcCode[otherwise] ?? "Unknown";
}
