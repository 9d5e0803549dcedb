/**
 * A real OTLP/HTTP JSON trace receiver for tests: a server on 127.0.0.1 that accepts `POST /v1/traces` and keeps
 * every span it is sent, flattened with its resource's attributes, for assertions.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An OTLP `AnyValue` in its JSON encoding (only the kinds Berth sends). */
export interface OtlpValue {
  readonly stringValue?: string;
  readonly intValue?: string | number;
  readonly boolValue?: boolean;
  readonly doubleValue?: number;
}

interface OtlpKeyValue {
  readonly key: string;
  readonly value: OtlpValue;
}

/** One received span, as sent (ids are hex in OTLP JSON). */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  /** 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly attributes?: readonly OtlpKeyValue[];
  readonly status?: { readonly code?: number; readonly message?: string };
  readonly events?: readonly { readonly name: string; readonly attributes?: readonly OtlpKeyValue[] }[];
  /** The attributes of the resource the span was sent under. */
  readonly resource: readonly OtlpKeyValue[];
}

interface ExportRequest {
  resourceSpans?: {
    resource?: { attributes?: OtlpKeyValue[] };
    scopeSpans?: { spans?: Omit<ReceivedSpan, 'resource'>[] }[];
  }[];
}

export interface OtlpReceiver {
  /** The URL to set as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. */
  readonly url: string;
  /** Every span received so far. */
  readonly spans: ReceivedSpan[];
  /** How many export requests arrived (whatever they held). */
  requests: number;
  /** Polls until `predicate` holds for the received spans, or fails after `timeoutMs`. */
  waitFor(predicate: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const state = { requests: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      state.requests += 1;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ExportRequest;
      for (const rs of body.resourceSpans ?? []) {
        for (const ss of rs.scopeSpans ?? []) {
          for (const span of ss.spans ?? []) spans.push({ ...span, resource: rs.resource?.attributes ?? [] });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    get requests() {
      return state.requests;
    },
    async waitFor(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(spans)) {
        if (Date.now() > deadline) {
          throw new Error(
            `spans not received within ${timeoutMs} ms: ${JSON.stringify(spans.map((s) => s.name))}`,
          );
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The value of attribute `key` of `span` (or of its resource), as a string or number; undefined when absent. */
export function attribute(
  attributes: readonly OtlpKeyValue[] | undefined,
  key: string,
): string | number | boolean | undefined {
  const v = attributes?.find((a) => a.key === key)?.value;
  if (v === undefined) return undefined;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.stringValue ?? v.boolValue ?? v.doubleValue;
}

/**
 * Sets `OTEL_*` variables for the exporter (which reads them when tracing starts); returns the function that
 * restores the previous values.
 */
export function setOtelEnv(vars: Record<string, string | undefined>): () => void {
  const previous = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>): void => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  return () => apply(previous);
}
