/**
 * A span exporter that says when exporting fails. The SDK reports export errors only to the OpenTelemetry
 * diagnostic logger, which is silent unless registered globally (we register nothing global): without this, a
 * wrong endpoint would lose every span without a word.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/** Where tracing reports its own trouble. */
export interface TracingLog {
  warn(obj: unknown, msg?: string): void;
}

export class ReportingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #log: TracingLog;
  /**
   * Whether the last export failed. Only the first failure of a run is logged, and the recovery after it, so an
   * unreachable collector costs one line per outage rather than one per batch.
   */
  #failing = false;

  constructor(inner: SpanExporter, log: TracingLog) {
    this.#inner = inner;
    this.#log = log;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.#inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS && !this.#failing) {
        this.#failing = true;
        this.#log.warn(
          { err: result.error, spans: spans.length },
          'trace export failed: spans are dropped until the OTLP endpoint answers',
        );
      } else if (result.code === ExportResultCode.SUCCESS && this.#failing) {
        this.#failing = false;
        this.#log.warn({}, 'trace export recovered');
      }
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}
