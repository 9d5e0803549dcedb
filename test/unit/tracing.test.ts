/**
 * `createTracing` on its own, exporting to a real OTLP/HTTP JSON receiver: disabled is null; the sampler follows
 * a caller's decision and samples new traces at `sampleRatio`; the resource names the service; the operation
 * observer nests under the active span, records failures, and traces nothing outside a span.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { createTracing } from '../../src/tracing/setup.ts';
import { distributionRouteTemplate } from '../../src/tracing/route-template.ts';
import type { TracingLog } from '../../src/tracing/reporting-exporter.ts';
import type { Tracing } from '../../src/tracing/tracing.ts';
import {
  attribute,
  setOtelEnv,
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.ts';

const STATUS_ERROR = 2;

const failOnWarning: TracingLog = {
  warn: (obj, msg) => assert.fail(`unexpected warning: ${msg ?? ''} ${JSON.stringify(obj)}`),
};

/** A log that keeps its messages. */
function recordingLog(): TracingLog & { messages: string[] } {
  const messages: string[] = [];
  return { messages, warn: (_obj, msg) => messages.push(msg ?? '') };
}

/** A context whose span is a caller's, received over the wire with `sampled` set or not. */
function remoteParent(traceId: string, sampled: boolean) {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId: '00f067aa0ba902b7',
    traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });
}

describe('createTracing', () => {
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

  async function started(sampleRatio = 1, log: TracingLog = failOnWarning): Promise<Tracing> {
    const tracing = await createTracing({ enabled: true, sampleRatio }, log);
    assert.ok(tracing);
    return tracing;
  }

  it('is null when disabled', async () => {
    assert.equal(await createTracing({ enabled: false, sampleRatio: 1 }, failOnWarning), null);
  });

  it('nests operation spans under the active span and records a failure', async () => {
    const tracing = await started();
    const request = tracing.tracer.startSpan('request');
    const traceId = request.spanContext().traceId;
    await tracing.withContext(trace.setSpan(ROOT_CONTEXT, request), async () => {
      // Asynchronous hops keep the context, as a handler's awaits do.
      await new Promise((r) => setImmediate(r));
      const endRead = tracing.operationObserver.begin({
        component: 'storage',
        driver: 's3',
        operation: 'read',
      });
      await Promise.resolve();
      const endQuery = tracing.operationObserver.begin({
        component: 'database',
        driver: 'postgres',
        operation: 'putManifest',
      });
      endRead();
      const failure = Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
      endQuery(failure);
      endQuery(new Error('a second end is ignored'));
    });
    request.end();
    await tracing.shutdown();
    await receiver.waitFor((spans) => spans.filter((s) => s.traceId === traceId).length === 3);
    const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
    const parent = inTrace.find((s) => s.name === 'request') as ReceivedSpan;
    const read = inTrace.find((s) => s.name === 'storage read') as ReceivedSpan;
    const query = inTrace.find((s) => s.name === 'database putManifest') as ReceivedSpan;
    assert.equal(read.parentSpanId, parent.spanId);
    assert.equal(query.parentSpanId, parent.spanId);
    assert.equal(read.kind, 3, 'a remote object store is a client call');
    assert.equal(attribute(read.attributes, 'berth.storage.driver'), 's3');
    assert.notEqual(read.status?.code, STATUS_ERROR);
    assert.equal(attribute(query.attributes, 'db.system.name'), 'postgresql');
    assert.equal(query.status?.code, STATUS_ERROR);
    assert.equal(query.status?.message, 'connection reset');
    assert.equal(attribute(query.attributes, 'error.type'), 'ECONNRESET');
    const exceptions = (query.events ?? []).filter((e) => e.name === 'exception');
    assert.equal(exceptions.length, 1);
    assert.equal(attribute(exceptions[0]?.attributes, 'exception.message'), 'connection reset');
  });

  it('traces no operation outside a span', async () => {
    const tracing = await started();
    const end = tracing.operationObserver.begin({
      component: 'database',
      driver: 'sqlite',
      operation: 'ping',
    });
    end();
    // A marker span exported by the same shutdown shows the export happened.
    const marker = tracing.tracer.startSpan('marker');
    marker.end();
    await tracing.shutdown();
    const traceId = marker.spanContext().traceId;
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === traceId));
    assert.equal(receiver.spans.filter((s) => s.name === 'database ping').length, 0);
  });

  it('follows a caller sampling decision and samples new traces at sampleRatio', async () => {
    const tracing = await started(0);
    const sampledTrace = '1'.repeat(32);
    const unsampledTrace = '2'.repeat(32);
    tracing.tracer.startSpan('caller sampled', {}, remoteParent(sampledTrace, true)).end();
    tracing.tracer.startSpan('caller not sampled', {}, remoteParent(unsampledTrace, false)).end();
    const root = tracing.tracer.startSpan('new trace');
    root.end();
    assert.equal(root.isRecording(), false);
    await tracing.shutdown();
    await receiver.waitFor((spans) => spans.some((s) => s.traceId === sampledTrace));
    assert.equal(receiver.spans.filter((s) => s.traceId === unsampledTrace).length, 0);
    assert.equal(receiver.spans.filter((s) => s.name === 'new trace').length, 0);
  });

  it('names the service berth, or OTEL_SERVICE_NAME', async () => {
    const first = await started();
    const a = first.tracer.startSpan('default name');
    a.end();
    await first.shutdown();
    const restore = setOtelEnv({
      OTEL_SERVICE_NAME: 'registry-eu',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test',
    });
    let second: Tracing;
    try {
      second = await started();
    } finally {
      restore();
    }
    const b = second.tracer.startSpan('env name');
    b.end();
    await second.shutdown();
    await receiver.waitFor((spans) => spans.some((s) => s.name === 'env name'));
    const defaultSpan = receiver.spans.find((s) => s.name === 'default name') as ReceivedSpan;
    const envSpan = receiver.spans.find((s) => s.name === 'env name') as ReceivedSpan;
    assert.equal(attribute(defaultSpan.resource, 'service.name'), 'berth');
    assert.equal(typeof attribute(defaultSpan.resource, 'service.version'), 'string');
    assert.equal(attribute(envSpan.resource, 'service.name'), 'registry-eu');
    assert.equal(attribute(envSpan.resource, 'deployment.environment.name'), 'test');
  });

  it('reports a failed export once, and an unsupported protocol', async () => {
    // A receiver that refuses every export with a status the exporter does not retry.
    const refusing = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(400).end());
    });
    refusing.listen(0, '127.0.0.1');
    await once(refusing, 'listening');
    const { port } = refusing.address() as AddressInfo;
    const log = recordingLog();
    const restore = setOtelEnv({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    });
    let tracing: Tracing;
    try {
      tracing = await started(1, log);
    } finally {
      restore();
    }
    try {
      assert.equal(log.messages.length, 1);
      assert.match(log.messages[0] ?? '', /protocol grpc is not supported/);
      tracing.tracer.startSpan('lost').end();
      await tracing.shutdown();
      assert.deepEqual(log.messages.slice(1), [
        'trace export failed: spans are dropped until the OTLP endpoint answers',
      ]);
    } finally {
      refusing.closeAllConnections();
      refusing.close();
    }
  });

  it('shutdown can be called twice', async () => {
    const tracing = await started();
    await Promise.all([tracing.shutdown(), tracing.shutdown()]);
    await tracing.shutdown();
  });
});

describe('distributionRouteTemplate', () => {
  it('names every distribution endpoint with placeholders', () => {
    assert.equal(distributionRouteTemplate('base'), '/v2/');
    assert.equal(distributionRouteTemplate('catalog'), '/v2/_catalog');
    assert.equal(distributionRouteTemplate('tags'), '/v2/{name}/tags/list');
    assert.equal(distributionRouteTemplate('manifest'), '/v2/{name}/manifests/{reference}');
    assert.equal(distributionRouteTemplate('uploadStart'), '/v2/{name}/blobs/uploads/');
    assert.equal(distributionRouteTemplate('upload'), '/v2/{name}/blobs/uploads/{uuid}');
    assert.equal(distributionRouteTemplate('blob'), '/v2/{name}/blobs/{digest}');
    assert.equal(distributionRouteTemplate('referrers'), '/v2/{name}/referrers/{digest}');
  });
});
