/**
 * What the rest of Berth sees of tracing: a `Tracing` exists only when `tracing.enabled` is set (see `setup.ts`);
 * this module holds types only, so importing it loads nothing of OpenTelemetry.
 */
import type { Context, Tracer } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import type { OperationObserver } from '../observability/operation-observer.ts';

export interface Tracing {
  /** The tracer every Berth span is started with. */
  readonly tracer: Tracer;
  /**
   * Starts a span per storage or database operation, as a child of the span active where the operation is
   * called (a request's); an operation called outside any span (background housekeeping) is not traced.
   */
  readonly operationObserver: OperationObserver;
  /** The context active where called: inside a traced request's handler, the one holding its server span. */
  activeContext(): Context;
  /** Runs `fn` with `context` active, for it and everything it starts asynchronously; returns what it returns. */
  withContext<T>(context: Context, fn: () => T): T;
  /**
   * Adds the hooks that give each request of `app` a server span, continuing the caller's trace from its
   * `traceparent`/`tracestate` headers, and make that span's context active for the request's handler. Call it
   * before the routes are registered.
   */
  instrumentHttp(app: FastifyInstance): void;
  /**
   * Exports the spans still queued, then stops the exporter. Never rejects (a failed export is logged). Safe to
   * call more than once.
   */
  shutdown(): Promise<void>;
}
