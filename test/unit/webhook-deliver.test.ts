/** One delivery attempt against real HTTP receivers on 127.0.0.1. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { deliver, deliveryHeaders, USER_AGENT } from '../../src/webhooks/deliver.ts';
import { nextAttemptAt, parseRetryAfter, RETRY_SCHEDULE_MS } from '../../src/webhooks/retry-schedule.ts';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';

const receivers: WebhookReceiver[] = [];
after(() => Promise.all(receivers.map((r) => r.close())));

async function receiver(...args: Parameters<typeof startReceiver>): Promise<WebhookReceiver> {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}

const LOOPBACK = { address: '127.0.0.1', family: 4 } as const;

function post(
  url: string,
  options: { timeoutMs?: number; signal?: AbortSignal; headers?: Record<string, string> } = {},
) {
  return deliver(
    {
      url: new URL(url),
      address: LOOPBACK,
      headers: options.headers ?? { 'content-type': 'application/json' },
      body: '{"a":1}',
    },
    { timeoutMs: options.timeoutMs ?? 5000, signal: options.signal },
  );
}

describe('deliver', () => {
  it('succeeds on 2xx, sending the body and headers', async () => {
    const r = await receiver(() => ({ status: 202, body: 'accepted' }));
    const headers = deliveryHeaders(
      {
        Authorization: 'Bearer token',
        'Content-Type': 'text/plain',
        'WEBHOOK-SIGNATURE': 'forged',
        'X-Extra': '1',
      },
      'application/cloudevents+json',
      { 'webhook-id': 'e1', 'webhook-timestamp': '1', 'webhook-signature': 'v1,abc' },
    );
    const result = await post(`${r.url}/hook`, { headers });
    assert.equal(result.ok, true);
    assert.equal(result.statusCode, 202);
    assert.equal(result.error, null);
    assert.equal(result.snippet, 'accepted');
    assert.ok(result.durationMs >= 0);
    const got = r.requests[0];
    assert.ok(got);
    assert.equal(got.method, 'POST');
    assert.equal(got.path, '/hook');
    assert.equal(got.body, '{"a":1}');
    assert.equal(got.headers['content-type'], 'application/cloudevents+json');
    assert.equal(got.headers['user-agent'], USER_AGENT);
    assert.match(USER_AGENT, /^Berth-Webhooks\/\d+\.\d+\.\d+/);
    assert.equal(got.headers['authorization'], 'Bearer token');
    assert.equal(got.headers['x-extra'], '1');
    assert.equal(got.headers['webhook-signature'], 'v1,abc');
  });

  it('connects to the checked address whatever the name resolves to', async () => {
    const r = await receiver(() => ({ status: 200 }));
    const port = new URL(r.url).port;
    // The name does not exist in DNS: only the pinned address can make this reach the receiver.
    const result = await post(`http://hooks.invalid:${port}/pinned`);
    assert.equal(result.ok, true, result.error ?? '');
    assert.equal(r.hits('/pinned'), 1);
    assert.equal(r.requests[0]?.headers.host, `hooks.invalid:${port}`);
  });

  it('fails on 500 with the status and a snippet bounded to 1 KiB', async () => {
    const r = await receiver(() => ({ status: 500, body: 'x'.repeat(100_000) }));
    const result = await post(`${r.url}/`);
    assert.equal(result.ok, false);
    assert.equal(result.statusCode, 500);
    assert.equal(result.error, 'HTTP 500');
    assert.equal(result.snippet, 'x'.repeat(1024));
  });

  it('does not follow a redirect: a 302 fails and its target is never asked', async () => {
    const target = await receiver(() => ({ status: 200 }));
    const r = await receiver(() => ({ status: 302, headers: { location: `${target.url}/elsewhere` } }));
    const result = await post(`${r.url}/hook`);
    assert.equal(result.ok, false);
    assert.equal(result.statusCode, 302);
    assert.equal(r.hits('/hook'), 1);
    assert.equal(target.requests.length, 0);
  });

  it('times out on a receiver that never answers, and stops on the job signal', async () => {
    const r = await receiver(() => 'hang');
    const timedOut = await post(`${r.url}/slow`, { timeoutMs: 200 });
    assert.equal(timedOut.ok, false);
    assert.equal(timedOut.statusCode, null);
    assert.equal(timedOut.error, 'timed out after 200 ms');
    const controller = new AbortController();
    const pending = post(`${r.url}/slow`, { timeoutMs: 60_000, signal: controller.signal });
    const deadline = Date.now() + 5000;
    while (r.hits('/slow') < 2 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    const aborted = await pending;
    assert.equal(aborted.ok, false);
    assert.equal(aborted.error, 'aborted');
  });

  it('times out on a response body that never ends', async () => {
    const r = await receiver(() => ({ status: 200, headers: { 'content-length': '100' }, body: 'partial' }));
    const result = await post(`${r.url}/`, { timeoutMs: 200 });
    assert.equal(result.ok, false);
    assert.notEqual(result.error, null);
  });

  it('reports a connection failure', async () => {
    const r = await receiver();
    const url = r.url;
    await r.close();
    receivers.splice(receivers.indexOf(r), 1);
    const result = await post(`${url}/`);
    assert.equal(result.ok, false);
    assert.equal(result.statusCode, null);
    assert.match(result.error ?? '', /ECONNREFUSED/);
  });

  it('parses Retry-After in seconds and as an HTTP date', async () => {
    const r = await receiver((_req, i) =>
      i === 0
        ? { status: 503, headers: { 'retry-after': '120' } }
        : { status: 429, headers: { 'retry-after': 'Wed, 21 Oct 2037 07:28:00 GMT' } },
    );
    const before = Date.now();
    const seconds = await post(`${r.url}/`);
    assert.equal(seconds.statusCode, 503);
    assert.ok(seconds.retryAfter);
    assert.ok(
      seconds.retryAfter.getTime() >= before + 120_000 &&
        seconds.retryAfter.getTime() <= Date.now() + 120_000,
    );
    const date = await post(`${r.url}/`);
    assert.equal(date.retryAfter?.toISOString(), '2037-10-21T07:28:00.000Z');
  });
});

describe('retry schedule', () => {
  const now = new Date('2026-12-07T05:00:00.000Z');
  it('follows the Standard Webhooks schedule over 8 attempts', () => {
    assert.deepEqual(RETRY_SCHEDULE_MS, [0, 5e3, 3e5, 18e5, 72e5, 18e6, 36e6, 36e6]);
    assert.equal(nextAttemptAt(1, now).getTime() - now.getTime(), 5_000);
    assert.equal(nextAttemptAt(2, now).getTime() - now.getTime(), 300_000);
    assert.equal(nextAttemptAt(7, now).getTime() - now.getTime(), 36_000_000);
  });
  it('takes the later of the schedule and Retry-After, capped at 24 hours', () => {
    assert.equal(nextAttemptAt(1, now, new Date(now.getTime() + 60_000)).getTime() - now.getTime(), 60_000);
    assert.equal(
      nextAttemptAt(3, now, new Date(now.getTime() + 60_000)).getTime() - now.getTime(),
      1_800_000,
    );
    assert.equal(
      nextAttemptAt(1, now, new Date(now.getTime() + 7 * 86_400_000)).getTime() - now.getTime(),
      86_400_000,
    );
  });
  it('parses Retry-After values', () => {
    assert.equal(parseRetryAfter('30', now)?.getTime(), now.getTime() + 30_000);
    assert.equal(
      parseRetryAfter('Mon, 07 Dec 2026 06:00:00 GMT', now)?.toISOString(),
      '2026-12-07T06:00:00.000Z',
    );
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter('-5', now), null);
    assert.equal(parseRetryAfter(undefined, now), null);
  });
});
