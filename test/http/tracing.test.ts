/**
 * Tracing end to end: a registry with `tracing.enabled` exports its spans over OTLP/HTTP JSON to a real receiver
 * in the test. A request's server span continues the caller's W3C trace; storage and database operations, seen
 * through the OperationObserver seam, nest under it. With tracing off, the SDK is never loaded.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { OperationComponent, OperationObserver } from '../../src/observability/operation-observer.ts';
import type { StorageDriver } from '../../src/storage/driver.ts';
import { createTestRegistry, randomBlob, sha256, type TestRegistry } from '../helpers/app.ts';
import {
  attribute,
  setOtelEnv,
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.ts';

const execFileAsync = promisify(execFile);

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${CALLER_SPAN_ID}-01`;

const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;
const STATUS_ERROR = 2;

/**
 * Test-only stand-in for `observeMethods`: replaces each method of `target` (an instance, in place, so that the
 * registry already holding it is observed too) with one that reports the call to `observer`, ending when the
 * returned promise settles.
 */
function observeInPlace(
  target: object,
  component: OperationComponent,
  driver: string,
  observer: OperationObserver,
): void {
  const names = new Set<string>();
  for (let proto = Object.getPrototypeOf(target) as object | null; proto && proto !== Object.prototype;) {
    for (const name of Object.getOwnPropertyNames(proto)) if (name !== 'constructor') names.add(name);
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  const record = target as Record<string, unknown>;
  for (const name of names) {
    const original = record[name];
    if (typeof original !== 'function') continue;
    record[name] = function observed(...args: unknown[]): unknown {
      const end = observer.begin({ component, driver, operation: name });
      let result: unknown;
      try {
        result = (original as (...a: unknown[]) => unknown).apply(target, args);
      } catch (e) {
        end(e);
        throw e;
      }
      if (result instanceof Promise) {
        result.then(
          () => end(),
          (e: unknown) => end(e),
        );
      } else {
        end();
      }
      return result;
    };
  }
}

/**
 * Polls until the server of `reg` has seen every connection close: a request span ends then, and must end before
 * the registry is closed to be exported.
 */
async function waitForNoConnections(reg: TestRegistry, timeoutMs = 10_000): Promise<void> {
  const server = reg.app.server;
  const deadline = Date.now() + timeoutMs;
  const count = (): Promise<number> =>
    new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
  while ((await count()) > 0) {
    assert.ok(Date.now() < deadline, 'the server never saw the connection close');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function named(spans: readonly ReceivedSpan[], name: string): ReceivedSpan[] {
  return spans.filter((s) => s.name === name);
}

describe('tracing enabled', () => {
  let receiver: OtlpReceiver;
  let restoreEnv: () => void;

  before(async () => {
    receiver = await startOtlpReceiver();
    restoreEnv = setOtelEnv({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: undefined,
      OTEL_RESOURCE_ATTRIBUTES: undefined,
    });
  });
  after(async () => {
    restoreEnv();
    await receiver.close();
  });

  /** A registry with tracing on and its storage and metadata observed; spans reach `receiver` on close. */
  async function tracedRegistry(
    prepare?: (storage: StorageDriver) => void,
    wrapObserver: (observer: OperationObserver) => OperationObserver = (o) => o,
  ): Promise<TestRegistry> {
    const reg = await createTestRegistry({ 'tracing.enabled': true });
    const tracing = reg.services.tracing;
    assert.ok(tracing, 'services.tracing is set when tracing.enabled');
    prepare?.(reg.services.storage);
    const observer = wrapObserver(tracing.operationObserver);
    observeInPlace(reg.services.storage, 'storage', 'filesystem', observer);
    observeInPlace(reg.services.metadata, 'database', 'sqlite', observer);
    return reg;
  }

  it('a request continues the caller trace, named by its route template, with HTTP attributes', async () => {
    const reg = await tracedRegistry();
    try {
      const image = await reg.pushImage('team/app', 'v1');
      const res = await reg.inject({
        method: 'GET',
        url: '/v2/team/app/manifests/v1?x=1',
        headers: { traceparent: TRACEPARENT, 'user-agent': 'trace-test/1.0', accept: image.mediaType },
      });
      assert.equal(res.statusCode, 200);
    } finally {
      await reg.dispose();
    }
    const name = 'GET /v2/{name}/manifests/{reference}';
    await receiver.waitFor((spans) => spans.some((s) => s.name === name && s.traceId === TRACE_ID));
    const span = named(receiver.spans, name).find((s) => s.traceId === TRACE_ID) as ReceivedSpan;
    assert.equal(span.parentSpanId, CALLER_SPAN_ID);
    assert.equal(span.kind, SERVER);
    assert.equal(attribute(span.attributes, 'http.request.method'), 'GET');
    assert.equal(attribute(span.attributes, 'http.route'), '/v2/{name}/manifests/{reference}');
    assert.equal(attribute(span.attributes, 'url.path'), '/v2/team/app/manifests/v1');
    assert.equal(attribute(span.attributes, 'http.response.status_code'), 200);
    assert.equal(attribute(span.attributes, 'client.address'), '127.0.0.1');
    assert.equal(attribute(span.attributes, 'user_agent.original'), 'trace-test/1.0');
    assert.notEqual(span.status?.code, STATUS_ERROR);
    assert.equal(attribute(span.resource, 'service.name'), 'berth');
    // The push before it had no traceparent: new root traces, one per request.
    const put = named(receiver.spans, 'PUT /v2/{name}/manifests/{reference}').at(-1) as ReceivedSpan;
    assert.ok(put, 'the push made a PUT span');
    assert.notEqual(put.traceId, TRACE_ID);
    assert.equal(put.parentSpanId ?? '', '');
    assert.equal(attribute(put.attributes, 'http.response.status_code'), 201);
    assert.ok(named(receiver.spans, 'POST /v2/{name}/blobs/uploads/').length >= 2, 'blob upload spans');
  });

  it('storage and database operations are child spans of the request span, even with a request body', async () => {
    const reg = await tracedRegistry();
    const traceId = 'a'.repeat(31) + '1';
    try {
      const blob = randomBlob(64);
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/nest/app/blobs/uploads/?digest=${sha256(blob)}`,
        headers: {
          traceparent: `00-${traceId}-${CALLER_SPAN_ID}-01`,
          'content-type': 'application/octet-stream',
        },
        payload: blob,
      });
      assert.equal(res.statusCode, 201, res.body);
    } finally {
      await reg.dispose();
    }
    await receiver.waitFor((spans) =>
      spans.some((s) => s.traceId === traceId && s.name === 'POST /v2/{name}/blobs/uploads/'),
    );
    const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
    const names = inTrace.map((s) => s.name).join(', ');
    const server = inTrace.find((s) => s.kind === SERVER) as ReceivedSpan;
    const children = inTrace.filter((s) => s.parentSpanId === server.spanId);
    const storage = children.filter((s) => s.name.startsWith('storage '));
    const database = children.filter((s) => s.name.startsWith('database '));
    assert.ok(
      storage.some((s) => s.name === 'storage appendUpload'),
      `the body is written by a storage span under the request: ${names}`,
    );
    assert.ok(database.length > 0, `database spans under the request: ${names}`);
    for (const s of storage) {
      assert.equal(s.kind, INTERNAL);
      assert.equal(attribute(s.attributes, 'berth.storage.driver'), 'filesystem');
      assert.equal(`storage ${String(attribute(s.attributes, 'berth.storage.operation'))}`, s.name);
    }
    for (const s of database) {
      assert.equal(s.kind, CLIENT);
      assert.equal(attribute(s.attributes, 'db.system.name'), 'sqlite');
      assert.equal(attribute(s.attributes, 'db.system'), 'sqlite');
      assert.equal(`database ${String(attribute(s.attributes, 'db.operation.name'))}`, s.name);
    }
    // Every span of the trace hangs off the caller's span through the request span.
    assert.equal(server.parentSpanId, CALLER_SPAN_ID);
    assert.equal(inTrace.length, children.length + 1, names);
  });

  it('a failed operation marks its span, and a 5xx the request span, as errors', async () => {
    const traceId = 'b'.repeat(31) + '2';
    const reg = await tracedRegistry((storage) => {
      // Every storage call fails, so the upload answers 500.
      for (const name of ['stat', 'read', 'put', 'delete']) {
        (storage as unknown as Record<string, unknown>)[name] = () =>
          Promise.reject(new Error('disk on fire'));
      }
    });
    try {
      const blob = randomBlob(16);
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/fail/app/blobs/uploads/?digest=${sha256(blob)}`,
        headers: {
          traceparent: `00-${traceId}-${CALLER_SPAN_ID}-01`,
          'content-type': 'application/octet-stream',
        },
        payload: blob,
      });
      assert.equal(res.statusCode, 500, res.body);
    } finally {
      await reg.dispose();
    }
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === traceId && s.kind === SERVER));
    const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
    const server = inTrace.find((s) => s.kind === SERVER) as ReceivedSpan;
    assert.equal(server.status?.code, STATUS_ERROR);
    assert.equal(attribute(server.attributes, 'http.response.status_code'), 500);
    assert.equal(attribute(server.attributes, 'error.type'), '500');
    // The error the handler failed with is recorded on the request span too.
    const thrown = server.events?.find((e) => e.name === 'exception');
    assert.equal(attribute(thrown?.attributes, 'exception.message'), 'disk on fire');
    const failed = inTrace.filter((s) => s.name.startsWith('storage ') && s.status?.code === STATUS_ERROR);
    assert.ok(failed.length > 0, `a failed storage span: ${inTrace.map((s) => s.name).join(', ')}`);
    for (const s of failed) {
      assert.equal(s.parentSpanId, server.spanId);
      assert.equal(s.status?.message, 'disk on fire');
      assert.equal(attribute(s.attributes, 'error.type'), 'Error');
      const exception = s.events?.find((e) => e.name === 'exception');
      assert.equal(attribute(exception?.attributes, 'exception.message'), 'disk on fire');
    }
  });

  it('a request the client abandons mid-body ends its span as an error', async () => {
    const traceId = 'd'.repeat(31) + '4';
    const begun: string[] = [];
    const reg = await tracedRegistry(undefined, (inner) => ({
      begin(operation) {
        begun.push(operation.operation);
        return inner.begin(operation);
      },
    }));
    try {
      await reg.app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = reg.app.server.address() as AddressInfo;
      const socket = connect(port, '127.0.0.1');
      await once(socket, 'connect');
      socket.write(
        `POST /v2/abort/app/blobs/uploads/?digest=${sha256('x')} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `traceparent: 00-${traceId}-${CALLER_SPAN_ID}-01\r\n` +
          'Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n' +
          'partial body',
      );
      // Once the handler is writing the body, the client goes away.
      const deadline = Date.now() + 10_000;
      while (!begun.includes('appendUpload')) {
        assert.ok(Date.now() < deadline, `the upload never started: ${begun.join(', ')}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      socket.destroy();
      await waitForNoConnections(reg);
    } finally {
      await reg.dispose();
    }
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === traceId && s.kind === SERVER));
    const server = receiver.spans.find((s) => s.traceId === traceId && s.kind === SERVER) as ReceivedSpan;
    assert.equal(server.name, 'POST /v2/{name}/blobs/uploads/');
    assert.equal(server.status?.code, STATUS_ERROR);
    assert.equal(attribute(server.attributes, 'error.type'), 'aborted');
    assert.equal(receiver.spans.filter((s) => s.traceId === traceId && s.kind === SERVER).length, 1);
  });

  it('a download the client abandons mid-response ends its span as an error', async () => {
    const traceId = 'e'.repeat(31) + '5';
    const reg = await tracedRegistry();
    try {
      const blob = randomBlob(16 * 1024 * 1024);
      const digest = await reg.pushBlob('big/app', blob);
      await reg.app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = reg.app.server.address() as AddressInfo;
      const socket = connect(port, '127.0.0.1');
      await once(socket, 'connect');
      socket.write(
        `GET /v2/big/app/blobs/${digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `traceparent: 00-${traceId}-${CALLER_SPAN_ID}-01\r\n\r\n`,
      );
      // The headers and the first bytes arrive; then the client stops reading and goes away.
      const [first] = (await once(socket, 'data')) as [Buffer];
      assert.match(first.toString('latin1'), /^HTTP\/1\.1 200/);
      socket.destroy();
      await waitForNoConnections(reg);
    } finally {
      await reg.dispose();
    }
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === traceId && s.kind === SERVER));
    const server = receiver.spans.find((s) => s.traceId === traceId && s.kind === SERVER) as ReceivedSpan;
    assert.equal(server.name, 'GET /v2/{name}/blobs/{digest}');
    assert.equal(server.status?.code, STATUS_ERROR);
    assert.equal(attribute(server.attributes, 'error.type'), 'aborted');
    assert.equal(attribute(server.attributes, 'http.response.status_code'), 200);
  });

  it('an unrouted request is named by its method only and a 404 is not an error', async () => {
    const reg = await tracedRegistry();
    const traceId = 'c'.repeat(31) + '3';
    try {
      const res = await reg.inject({
        method: 'GET',
        url: '/no/such/path',
        headers: { traceparent: `00-${traceId}-${CALLER_SPAN_ID}-01` },
      });
      assert.equal(res.statusCode, 404);
    } finally {
      await reg.dispose();
    }
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === traceId));
    const span = receiver.spans.find((s) => s.traceId === traceId) as ReceivedSpan;
    assert.equal(span.name, 'GET');
    assert.equal(attribute(span.attributes, 'http.route'), undefined);
    assert.equal(attribute(span.attributes, 'http.response.status_code'), 404);
    assert.notEqual(span.status?.code, STATUS_ERROR);
  });
});

describe('tracing disabled (the default)', () => {
  it('creates no tracing and exports nothing', async () => {
    const receiver = await startOtlpReceiver();
    const restoreEnv = setOtelEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url });
    try {
      const reg = await createTestRegistry();
      try {
        assert.equal(reg.services.tracing, null);
        const res = await reg.inject({ method: 'GET', url: '/v2/', headers: { traceparent: TRACEPARENT } });
        assert.equal(res.statusCode, 200);
      } finally {
        await reg.dispose();
      }
      assert.equal(receiver.requests, 0);
    } finally {
      restoreEnv();
      await receiver.close();
    }
  });

  it('loads no OpenTelemetry SDK module (only the tiny API package, which prom-client asks for)', async () => {
    // A fresh process: this one has loaded the SDK for the tests above.
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const script = `
      import { createRequire } from 'node:module';
      import { createTestRegistry } from './test/helpers/app.ts';
      const reg = await createTestRegistry();
      const res = await reg.inject({ method: 'GET', url: '/v2/' });
      await reg.dispose();
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@opentelemetry/') && !k.includes('@opentelemetry/api/'));
      console.log(JSON.stringify({ status: res.statusCode, loaded }));
    `;
    const { stdout } = await execFileAsync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '--eval', script],
      { cwd: root },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1) as string) as {
      status: number;
      loaded: string[];
    };
    assert.equal(result.status, 200);
    assert.deepEqual(result.loaded, []);
  });
});
