/**
 * Prometheus metrics over HTTP (docs/metrics.md): counters and histograms move by exactly what a push and a pull
 * did, route labels are templates, `/metrics` behind a bearer token, on a separate listener, or absent when
 * disabled.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startMetricsListener } from '../../src/metrics/endpoint.ts';
import { BerthMetrics } from '../../src/metrics/metrics.ts';
import { createTestRegistry, OCI_MANIFEST, randomBlob, sha256, type TestRegistry } from '../helpers/app.ts';
import { basic } from '../helpers/auth.ts';
import { startBerth } from '../helpers/server.ts';

type Samples = Map<string, number>;

/**
 * Parses the text exposition into `name{k="v",...}` (labels sorted by name) -> value. Comment lines are skipped;
 * label values here never contain escaped quotes or commas.
 */
function parseExposition(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparseable exposition line: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)]
      .map(([, k, v]) => `${k}="${v}"`)
      .sort();
    samples.set(key(m[1] as string, labels), Number(m[3]));
  }
  return samples;
}

function key(name: string, labels: string[]): string {
  return labels.length === 0 ? name : `${name}{${labels.join(',')}}`;
}

/** The sample of `name` with exactly `labels`, 0 when absent (a counter not yet incremented). */
function value(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const k = key(
    name,
    Object.entries(labels)
      .map(([l, v]) => `${l}="${v}"`)
      .sort(),
  );
  return samples.get(k) ?? 0;
}

/** The sum of every sample of `name` whose labels include `labels`. */
function sum(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  const wanted = Object.entries(labels).map(([l, v]) => `${l}="${v}"`);
  for (const [k, v] of samples) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    if (wanted.every((w) => k.includes(w))) total += v;
  }
  return total;
}

async function scrape(reg: TestRegistry, headers: Record<string, string> = {}): Promise<Samples> {
  const res = await reg.inject({ method: 'GET', url: '/metrics', headers });
  assert.equal(res.statusCode, 200, res.body);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parseExposition(res.body);
}

const MANIFEST_ROUTE = '/v2/{name}/manifests/{reference}';
const BLOB_ROUTE = '/v2/{name}/blobs/{digest}';
const UPLOAD_START_ROUTE = '/v2/{name}/blobs/uploads/';

describe('metrics on the registry listener', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(() => reg.dispose());

  it('counts exactly one push and one pull of an image', async () => {
    const before = await scrape(reg);
    const image = await reg.pushImage('team/app', 'v1');
    const manifest = await reg.inject({
      method: 'GET',
      url: '/v2/team/app/manifests/v1',
      headers: { accept: OCI_MANIFEST },
    });
    assert.equal(manifest.statusCode, 200);
    const head = await reg.inject({ method: 'HEAD', url: '/v2/team/app/manifests/v1' });
    assert.equal(head.statusCode, 200);
    const layer = await reg.inject({ method: 'GET', url: `/v2/team/app/blobs/${image.layers[0]?.digest}` });
    assert.equal(layer.statusCode, 200);
    const after = await scrape(reg);
    const delta = (name: string, labels: Record<string, string> = {}): number =>
      value(after, name, labels) - value(before, name, labels);

    assert.equal(delta('berth_manifest_pushes_total'), 1);
    assert.equal(delta('berth_blob_pushes_total'), 2, 'the config and the layer');
    assert.equal(delta('berth_manifest_pulls_total'), 1, 'HEAD is not a pull');
    assert.equal(delta('berth_blob_pulls_total'), 1);
    const put = { method: 'PUT', route: MANIFEST_ROUTE, status: '201' };
    assert.equal(delta('berth_http_requests_total', put), 1);
    assert.equal(delta('berth_http_request_duration_seconds_count', put), 1);
    assert.equal(
      delta('berth_http_requests_total', { method: 'GET', route: MANIFEST_ROUTE, status: '200' }),
      1,
    );
    assert.equal(
      delta('berth_http_requests_total', { method: 'HEAD', route: MANIFEST_ROUTE, status: '200' }),
      1,
    );
    assert.equal(delta('berth_http_requests_total', { method: 'GET', route: BLOB_ROUTE, status: '200' }), 1);
    assert.equal(
      delta('berth_http_requests_total', { method: 'POST', route: UPLOAD_START_ROUTE, status: '201' }),
      2,
    );
    // Bodies: the two blobs and the manifest went in; the manifest and the layer came out (other answers are empty).
    const configBytes = image.config.size;
    assert.equal(
      delta('berth_http_request_bytes_total'),
      configBytes + (image.layerBytes[0]?.length ?? 0) + image.bytes.length,
    );
    assert.equal(
      delta('berth_http_response_bytes_total'),
      image.bytes.length + (image.layerBytes[0]?.length ?? 0),
    );
    assert.equal(value(after, 'berth_uploads_in_progress'), 0);

    // Storage and database calls were timed.
    const storageCount = (s: Samples): number =>
      sum(s, 'berth_storage_operation_duration_seconds_count', { driver: 'filesystem' });
    assert.ok(storageCount(after) > storageCount(before), 'storage operations observed');
    assert.equal(
      delta('berth_database_operation_duration_seconds_count', {
        driver: 'sqlite',
        operation: 'putManifest',
      }),
      1,
    );
    assert.equal(sum(after, 'berth_storage_operation_errors_total'), 0, 'no storage errors');
    assert.equal(value(after, 'berth_database_connections', { state: 'total' }), 1);

    // No raw path ever becomes a label value.
    for (const k of after.keys()) assert.ok(!k.includes('team/app'), `raw path in ${k}`);
    // Scrapes are not counted.
    assert.equal(sum(after, 'berth_http_requests_total', { route: '/metrics' }), 0);
    // Default process metrics are there.
    assert.ok(after.has('process_cpu_user_seconds_total'));
  });

  it('labels an unknown /v2 path and an unrouted path `unmatched`', async () => {
    const before = await scrape(reg);
    assert.equal((await reg.inject({ method: 'GET', url: '/v2/team/app/nothing' })).statusCode, 404);
    assert.equal((await reg.inject({ method: 'GET', url: '/nowhere' })).statusCode, 404);
    const after = await scrape(reg);
    const labels = { method: 'GET', route: 'unmatched', status: '404' };
    assert.equal(
      value(after, 'berth_http_requests_total', labels) - value(before, 'berth_http_requests_total', labels),
      2,
    );
  });

  it('counts the bytes of a chunked upload body as the stream delivered them', async () => {
    const start = await reg.inject({ method: 'POST', url: '/v2/team/chunked/blobs/uploads/' });
    assert.equal(start.statusCode, 202);
    const location = String(start.headers.location);
    const bytes = randomBlob(3000);
    const before = await scrape(reg);
    const patch = await reg.inject({
      method: 'PATCH',
      url: location,
      headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
      payload: Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]),
    });
    assert.equal(patch.statusCode, 202, patch.body);
    assert.equal(patch.raw.req.headers['content-length'], undefined, 'the body had no announced length');
    const target = new URL(String(patch.headers.location), 'http://registry');
    target.searchParams.set('digest', sha256(bytes));
    const put = await reg.inject({ method: 'PUT', url: `${target.pathname}${target.search}` });
    assert.equal(put.statusCode, 201, put.body);
    const after = await scrape(reg);
    assert.equal(
      value(after, 'berth_http_request_bytes_total') - value(before, 'berth_http_request_bytes_total'),
      bytes.length,
    );
    assert.equal(value(after, 'berth_blob_pushes_total') - value(before, 'berth_blob_pushes_total'), 1);
    assert.equal(value(after, 'berth_uploads_in_progress'), 0);
  });

  it('reports the job queue depth and webhook deliveries through the metrics object', async () => {
    const metrics = reg.services.metrics as BerthMetrics;
    metrics.setJobQueueDepth(async () => [
      { queue: 'webhooks', state: 'pending', count: 3 },
      { queue: 'gc', state: 'running', count: 1 },
    ]);
    metrics.webhookDelivery('success');
    metrics.webhookDelivery('success');
    metrics.webhookDelivery('failure');
    const s = await scrape(reg);
    assert.equal(value(s, 'berth_job_queue_depth', { queue: 'webhooks', state: 'pending' }), 3);
    assert.equal(value(s, 'berth_job_queue_depth', { queue: 'gc', state: 'running' }), 1);
    assert.equal(value(s, 'berth_webhook_deliveries_total', { outcome: 'success' }), 2);
    assert.equal(value(s, 'berth_webhook_deliveries_total', { outcome: 'failure' }), 1);
    metrics.setJobQueueDepth(undefined);
  });
});

describe('metrics of refused requests', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'token' });
  });
  after(() => reg.dispose());

  it('counts 401s on /v2 as unauthenticated and token endpoint refusals as token', async () => {
    const before = await scrape(reg);
    assert.equal((await reg.inject({ method: 'GET', url: '/v2/' })).statusCode, 401);
    const token = await reg.inject({
      method: 'GET',
      url: '/auth/token',
      headers: basic('nobody', 'wrong-password'),
    });
    assert.equal(token.statusCode, 401, token.body);
    const after = await scrape(reg);
    const delta = (reason: string): number =>
      value(after, 'berth_auth_failures_total', { reason }) -
      value(before, 'berth_auth_failures_total', { reason });
    assert.equal(delta('unauthenticated'), 1);
    assert.equal(delta('token'), 1);
    assert.equal(
      value(after, 'berth_http_requests_total', { method: 'GET', route: '/auth/token', status: '401' }),
      1,
      'other Fastify routes are labelled with their own template',
    );
  });
});

describe('metrics endpoint configuration', () => {
  it('requires the bearer token when one is configured', async () => {
    const token = 'a-long-enough-metrics-token';
    const reg = await createTestRegistry({ 'metrics.token': token });
    try {
      const none = await reg.inject({ method: 'GET', url: '/metrics' });
      assert.equal(none.statusCode, 401);
      assert.match(String(none.headers['www-authenticate']), /^Bearer/);
      const wrong = await reg.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${token}x` },
      });
      assert.equal(wrong.statusCode, 401);
      const basicAuth = await reg.inject({ method: 'GET', url: '/metrics', headers: basic('a', token) });
      assert.equal(basicAuth.statusCode, 401);
      const ok = await scrape(reg, { authorization: `Bearer ${token}` });
      assert.ok(ok.has('berth_uploads_in_progress'));
    } finally {
      await reg.dispose();
    }
  });

  it('answers 404 when metrics are disabled, and nothing is collected', async () => {
    const reg = await createTestRegistry({ 'metrics.enabled': false });
    try {
      assert.equal(reg.services.metrics, null);
      const res = await reg.inject({ method: 'GET', url: '/metrics' });
      assert.equal(res.statusCode, 404);
      // Storage still works unwrapped.
      await reg.pushImage('plain/app', 'v1');
    } finally {
      await reg.dispose();
    }
  });

  it('serves /metrics on a separate listener with `metrics.listen`, not on the registry listener', async () => {
    const token = 'a-long-enough-metrics-token';
    const reg = await createTestRegistry({ 'metrics.listen': '127.0.0.1:0', 'metrics.token': token });
    const listener = await startMetricsListener(
      '127.0.0.1',
      0,
      reg.services.metrics as BerthMetrics,
      reg.config.metrics.token,
    );
    try {
      assert.equal((await reg.inject({ method: 'GET', url: '/metrics' })).statusCode, 404);
      await reg.pushImage('sep/app', 'v1');
      const base = `http://127.0.0.1:${listener.address.port}`;
      const denied = await fetch(`${base}/metrics`);
      assert.equal(denied.status, 401);
      assert.match(denied.headers.get('www-authenticate') ?? '', /^Bearer/);
      await denied.arrayBuffer();
      const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      const samples = parseExposition(await res.text());
      assert.equal(value(samples, 'berth_manifest_pushes_total'), 1);
      const other = await fetch(`${base}/other`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(other.status, 404);
      await other.arrayBuffer();
    } finally {
      await listener.close();
      await reg.dispose();
    }
  });

  it('`berth serve` with `metrics.listen` opens the metrics listener and closes it on shutdown', async () => {
    const berth = await startBerth({ env: { BERTH_METRICS_LISTEN: '127.0.0.1:0' } });
    try {
      // The metrics listener starts after the registry's: poll the log for its address, with a deadline.
      const deadline = Date.now() + 20_000;
      let port: number | undefined;
      while (port === undefined) {
        const m = /"port":(\d+)\}[^\n]*"msg":"serving metrics"/.exec(berth.output());
        if (m) port = Number(m[1]);
        else if (Date.now() > deadline) assert.fail(`no "serving metrics" line:\n${berth.output()}`);
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /^berth_uploads_in_progress 0$/m);
      const onRegistry = await fetch(`${berth.url}/metrics`);
      assert.equal(onRegistry.status, 404);
      await onRegistry.arrayBuffer();
      await berth.stop();
      assert.equal(berth.process.exitCode, 0, berth.output());
      await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'the listener is closed');
    } finally {
      await berth.dispose();
    }
  });

  it('counts a separate BerthMetrics registry per instance (no global registry)', async () => {
    const a = new BerthMetrics({ defaultMetrics: false });
    const b = new BerthMetrics({ defaultMetrics: false });
    a.webhookDelivery('success');
    assert.equal(
      value(parseExposition(await a.scrape()), 'berth_webhook_deliveries_total', { outcome: 'success' }),
      1,
    );
    assert.equal(
      value(parseExposition(await b.scrape()), 'berth_webhook_deliveries_total', { outcome: 'success' }),
      0,
    );
  });
});
