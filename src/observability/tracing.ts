/**
 * OpenTelemetry tracing across the facade, workflows and activities, off by
 * default (ONCEFLOW_TRACING=true turns it on). The OTLP exporter reads the
 * standard variables itself (OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, …).
 *
 * Temporal's own OpenTelemetryPlugin carries the trace context through
 * workflow start headers into workflow and activity spans, so one trace runs
 * from the HTTP request to the Gemini call and the outbox write.
 */
import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { OpenTelemetryPlugin } from '@temporalio/interceptors-opentelemetry';

export interface Tracing {
  /** Give to Worker.create, bundleWorkflowCode and the Temporal Client (`plugins`). */
  plugin: OpenTelemetryPlugin;
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
  return {
    plugin: new OpenTelemetryPlugin({ resource, spanProcessor }),
    shutdown: async () => {
      await provider.shutdown();
      trace.disable();
    },
  };
}
