/**
 * A SERVER span per HTTP request, named `<METHOD> <route template>`, with the stable HTTP semantic-convention
 * attributes. The caller's W3C trace context (`traceparent`, `tracestate`) is its parent when present.
 */
import {
  defaultTextMapGetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ContextStore } from './context-store.ts';
import { exceptionOf } from './exception.ts';
import { pathOf, requestRouteTemplate } from './route-template.ts';

export interface HttpSpanOptions {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  readonly contexts: ContextStore;
}

interface RequestTrace {
  readonly span: Span;
  readonly context: Context;
}

export function registerHttpSpans(app: FastifyInstance, options: HttpSpanOptions): void {
  const { tracer, propagator, contexts } = options;
  // Keyed by the request object so that nothing is added to Fastify's request type; dropped when the span ends.
  const traces = new WeakMap<FastifyRequest, RequestTrace>();

  const end = (request: FastifyRequest, finish: (span: Span) => void): void => {
    const t = traces.get(request);
    if (t === undefined) return;
    traces.delete(request);
    finish(t.span);
    t.span.end();
  };

  app.addHook('onRequest', (request, reply, done) => {
    const parent = propagator.extract(ROOT_CONTEXT, request.headers, defaultTextMapGetter);
    const route = requestRouteTemplate(request);
    const userAgent = request.headers['user-agent'];
    const span = tracer.startSpan(
      route === undefined ? request.method : `${request.method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: request.method,
          [ATTR_URL_PATH]: pathOf(request.raw.url),
          [ATTR_URL_SCHEME]: request.protocol,
          [ATTR_CLIENT_ADDRESS]: request.ip,
          ...(route !== undefined ? { [ATTR_HTTP_ROUTE]: route } : {}),
          ...(userAgent !== undefined ? { [ATTR_USER_AGENT_ORIGINAL]: userAgent } : {}),
        },
      },
      parent,
    );
    const context = trace.setSpan(parent, span);
    traces.set(request, { span, context });
    // Why the response's `close` and not only Fastify's hooks: a client that goes away while the response is
    // streaming (a blob download cut short) gets neither onResponse (no `finish`) nor onRequestAbort (the
    // request itself was complete), and its span would never end. A finished response is onResponse's to end.
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      end(request, (span) => {
        if (reply.raw.headersSent) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, reply.raw.statusCode);
        aborted(span);
      });
    });
    // The rest of the hook chain, and the handler, run from inside `done`: see ContextStore.with.
    contexts.with(context, () => done());
  });

  // Entered again just before the handler, so that a hook in between which resumed from a callback of its own
  // (an event emitter's, which runs in the emitter's context) cannot leave the handler outside the request's.
  app.addHook('preHandler', (request, _reply, done) => {
    const t = traces.get(request);
    if (t === undefined) {
      done();
      return;
    }
    contexts.with(t.context, () => done());
  });

  app.addHook('onError', (request, _reply, error, done) => {
    traces.get(request)?.span.recordException(exceptionOf(error));
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    end(request, (span) => {
      const status = reply.statusCode;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      // A 4xx is the client's mistake, not the server's: only 5xx marks a server span as failed.
      if (status >= 500) {
        span.setAttribute(ATTR_ERROR_TYPE, String(status));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
    });
    done();
  });

  app.addHook('onRequestAbort', (request, done) => {
    end(request, aborted);
    done();
  });
}

/** Marks the span of a request whose client closed the connection before the whole response was sent. */
function aborted(span: Span): void {
  span.setAttribute(ATTR_ERROR_TYPE, 'aborted');
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'the client closed the connection' });
}
