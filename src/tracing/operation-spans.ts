/** The tracing `OperationObserver`: one span per storage or database operation, nested under the caller's span. */
import { SpanKind, SpanStatusCode, trace, type Attributes, type Tracer } from '@opentelemetry/api';
import type { OperationDescriptor, OperationObserver } from '../observability/operation-observer.ts';
import type { ContextStore } from './context-store.ts';
import { exceptionOf } from './exception.ts';

/** `db.system.name` values of the OpenTelemetry semantic conventions for our metadata drivers. */
const DB_SYSTEMS: Readonly<Record<string, string>> = { sqlite: 'sqlite', postgres: 'postgresql' };

const NOTHING_TO_END = (): void => undefined;

export class OperationSpans implements OperationObserver {
  readonly #tracer: Tracer;
  readonly #contexts: ContextStore;

  constructor(tracer: Tracer, contexts: ContextStore) {
    this.#tracer = tracer;
    this.#contexts = contexts;
  }

  begin(operation: OperationDescriptor): (error?: unknown) => void {
    const parent = this.#contexts.active();
    // Outside a request (the upload purge, startup) there is no span to nest under: a root trace per query of
    // background housekeeping would drown the requests' traces.
    if (trace.getSpan(parent) === undefined) return NOTHING_TO_END;
    const span = this.#tracer.startSpan(
      `${operation.component} ${operation.operation}`,
      { kind: kindOf(operation), attributes: attributesOf(operation) },
      parent,
    );
    let ended = false;
    return (error?: unknown) => {
      if (ended) return;
      ended = true;
      if (error !== undefined) {
        span.recordException(exceptionOf(error));
        span.setStatus({ code: SpanStatusCode.ERROR, message: exceptionOf(error).message });
        span.setAttribute('error.type', errorType(error));
      }
      span.end();
    };
  }
}

/** A database or a remote object store is a client call; the local filesystem is internal work. */
function kindOf(operation: OperationDescriptor): SpanKind {
  if (operation.component === 'database') return SpanKind.CLIENT;
  return operation.driver === 'filesystem' ? SpanKind.INTERNAL : SpanKind.CLIENT;
}

function attributesOf(operation: OperationDescriptor): Attributes {
  if (operation.component === 'database') {
    const system = DB_SYSTEMS[operation.driver] ?? operation.driver;
    // `db.system` is the name older backends index; `db.system.name` the stable convention's.
    return { 'db.system.name': system, 'db.system': system, 'db.operation.name': operation.operation };
  }
  return { 'berth.storage.driver': operation.driver, 'berth.storage.operation': operation.operation };
}

/** The class of an error, for `error.type`: its `code` when it has one, else its constructor's name. */
function errorType(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    if (error instanceof Error) return error.name;
  }
  return '_OTHER';
}
