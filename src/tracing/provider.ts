/**
 * The OpenTelemetry SDK, set up for Berth: loaded only through `setup.ts` when tracing is enabled. Spans are
 * sampled ParentBased(TraceIdRatioBased(ratio)) (a caller's sampling decision is followed), batched and exported
 * as OTLP/HTTP JSON. Nothing is registered in the OpenTelemetry API's globals (see `context-store.ts`).
 */
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { VERSION } from '../version.ts';
import { ContextStore } from './context-store.ts';
import { registerHttpSpans } from './http-spans.ts';
import { OperationSpans } from './operation-spans.ts';
import { ReportingExporter, type TracingLog } from './reporting-exporter.ts';
import type { Tracing } from './tracing.ts';

export interface TracingOptions {
  /** The fraction of new traces (those without a caller's sampling decision) recorded, 0 to 1. */
  readonly sampleRatio: number;
  /** Where export failures and unsupported settings are reported. */
  readonly log: TracingLog;
}

/** The only OTLP protocol the exporter speaks; `OTEL_EXPORTER_OTLP_PROTOCOL` does not change it. */
const PROTOCOL = 'http/json';

/** The instrumentation scope of Berth's spans. */
const SCOPE = 'berth';

export function startTracing(options: TracingOptions): Tracing {
  const protocol =
    process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || process.env.OTEL_EXPORTER_OTLP_PROTOCOL || PROTOCOL;
  if (protocol !== PROTOCOL) {
    options.log.warn(
      { protocol },
      `OTLP protocol ${protocol} is not supported: traces are sent as ${PROTOCOL} (point the endpoint at an OTLP/HTTP receiver, port 4318 by default)`,
    );
  }
  // Later wins: the SDK's defaults, then Berth's name and version, then OTEL_SERVICE_NAME and
  // OTEL_RESOURCE_ATTRIBUTES.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'berth', [ATTR_SERVICE_VERSION]: VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({
    resource,
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor(new ReportingExporter(new OTLPTraceExporter(), options.log))],
  });
  const tracer = provider.getTracer(SCOPE, VERSION);
  const propagator = new W3CTraceContextPropagator();
  const contexts = new ContextStore();
  let shutdown: Promise<void> | undefined;
  return {
    tracer,
    operationObserver: new OperationSpans(tracer, contexts),
    activeContext: () => contexts.active(),
    withContext: (context, fn) => contexts.with(context, fn),
    instrumentHttp: (app) => registerHttpSpans(app, { tracer, propagator, contexts }),
    shutdown() {
      // The last batch failing to export has been reported by ReportingExporter: closing the registry goes on.
      shutdown ??= provider.shutdown().catch(() => undefined);
      return shutdown;
    },
  };
}
