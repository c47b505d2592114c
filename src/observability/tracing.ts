/**
 * OpenTelemetry tracing across the facade, workflows and activities, off by
 * default (ONCEFLOW_TRACING=true turns it on). The OTLP exporter reads the
 * standard variables itself (OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, …).
 *
 * The facade's request span comes from @fastify/otel (the Fastify team's
 * instrumentation): it continues a caller's W3C `traceparent` and runs the
 * request inside that span, so the Temporal client's StartWorkflow span is its
 * child. Temporal's own OpenTelemetryPlugin then carries the context through
 * workflow start headers into workflow and activity spans: one trace runs from
 * the caller's HTTP request to the Gemini call and the outbox write.
 */
import { FastifyOtelInstrumentation } from '@fastify/otel';
import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { OpenTelemetryPlugin } from '@temporalio/interceptors-opentelemetry';

export interface Tracing {
  /** Give to Worker.create, bundleWorkflowCode and the Temporal Client (`plugins`). */
  plugin: OpenTelemetryPlugin;
  /** Register on the Fastify app before any route (buildApp does): one server span per request. */
  fastify: FastifyOtelInstrumentation;
  /** Flushes pending spans; call on shutdown. */
  shutdown(): Promise<void>;
}

export interface CreateTracingOptions {
  /** `api`, `worker`, `relay`; becomes `service.name = onceflow-<service>`. */
  service: string;
  /** Default: OTLP over HTTP, configured by the OTEL_* variables, batched. */
  spanProcessor?: SpanProcessor;
}

export function createTracing(options: CreateTracingOptions): Tracing {
  const resource = new Resource({ 'service.name': `onceflow-${options.service}` });
  const spanProcessor = options.spanProcessor ?? new BatchSpanProcessor(new OTLPTraceExporter());
  const provider = new NodeTracerProvider({ resource });
  provider.addSpanProcessor(spanProcessor);
  // The client and activity interceptors use the global tracer provider.
  provider.register();
  const fastify = new FastifyOtelInstrumentation();
  fastify.setTracerProvider(provider);
  return {
    plugin: new OpenTelemetryPlugin({ resource, spanProcessor }),
    fastify,
    shutdown: async () => {
      await provider.shutdown();
      trace.disable();
    },
  };
}
