/**
 * The job queue's admin API (`/api/v1/jobs`) through `inject()`: listing with filters and the cursor, one job,
 * redrive and cancel with their state rules and audit records, validation, and refusal to anyone but system
 * administrators. Every response is checked against `docs/api/openapi.yaml`. The runner is not started (the test
 * registry runs no background jobs): jobs are put in the states wanted through the store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bootstrapAdmin } from '../../src/auth/bootstrap.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { assertError, createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import { conforms } from '../helpers/openapi.ts';

const PREFIX = '/api/v1';
const ADMIN = { user: 'admin', password: 'admin-password' };
const USER = { user: 'dev', password: 'dev-password-1' };
type Who = { user: string; password: string } | 'anonymous';

describe('jobs admin API', () => {
  let reg: TestRegistry;

  async function call(who: Who, method: 'GET' | 'POST', url: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (who !== 'anonymous')
      headers.authorization = `Basic ${Buffer.from(`${who.user}:${who.password}`).toString('base64')}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await reg.inject({
      method,
      url: `${PREFIX}${url}`,
      headers,
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    conforms(method, `${PREFIX}${url}`, res);
    return res;
  }
  const ok = <T = Record<string, unknown>>(res: Response): T => {
    assert.equal(res.statusCode, 200, res.body);
    return json<T>(res);
  };
  const jobs = () => (reg.services.metadata as KyselyMetadataStore).jobStore();

  /** A job of `queue` made dead by a failed last attempt. */
  async function deadJob(queue: string): Promise<number> {
    const now = Date.now();
    const id = await jobs().enqueue({ queue, payload: { n: 1 }, runAt: now, maxAttempts: 1, now });
    assert.ok(id !== null);
    const [claimed] = await jobs().claim({ queues: [queue], owner: 'test', now, leaseMs: 60_000, limit: 1 });
    assert.equal(claimed?.id, id);
    assert.equal(await jobs().fail(id, 'test', 'Error: boom', null, now), true);
    return id;
  }

  before(async () => {
    reg = await createTestRegistry({ 'auth.mode': 'basic' });
    assert.equal(await bootstrapAdmin(reg.services.auth.store, ADMIN.user, ADMIN.password), 'created');
    const res = await call(ADMIN, 'GET', '/jobs');
    assert.deepEqual(ok(res), { items: [], next: null });
    const created = await reg.inject({
      method: 'POST',
      url: `${PREFIX}/users`,
      headers: {
        authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`,
        'content-type': 'application/json',
      },
      payload: JSON.stringify({ username: USER.user, password: USER.password }),
    });
    assert.equal(created.statusCode, 201, created.body);
  });
  after(async () => reg.dispose());

  it('lists jobs newest first, by queue and state, a page at a time', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await reg.services.jobs.enqueue(
        'list-a',
        { i },
        { runAt: new Date(Date.now() + 3_600_000) },
      );
      assert.ok(id !== null);
      ids.push(id);
    }
    const other = await reg.services.jobs.enqueue('list-b', null, { dedupeKey: 'only-once' });
    const dead = await deadJob('list-a');

    const a = ok<{ items: { id: number; state: string }[]; next: string | null }>(
      await call(ADMIN, 'GET', '/jobs?queue=list-a'),
    );
    assert.deepEqual(
      a.items.map((j) => j.id),
      [dead, ...ids.slice().reverse()],
    );
    assert.equal(a.next, null);

    const queued = ok<{ items: { id: number }[] }>(
      await call(ADMIN, 'GET', '/jobs?queue=list-a&state=queued'),
    );
    assert.deepEqual(
      queued.items.map((j) => j.id),
      ids.slice().reverse(),
    );
    const deadOnes = ok<{ items: { id: number; lastError: string }[] }>(
      await call(ADMIN, 'GET', '/jobs?state=dead&queue=list-a'),
    );
    assert.deepEqual(
      deadOnes.items.map((j) => [j.id, j.lastError]),
      [[dead, 'Error: boom']],
    );

    const first = ok<{ items: { id: number }[]; next: string }>(
      await call(ADMIN, 'GET', '/jobs?queue=list-a&limit=2'),
    );
    assert.equal(first.items.length, 2);
    assert.equal(first.next, String(first.items[1]?.id));
    const second = ok<{ items: { id: number }[]; next: string | null }>(
      await call(ADMIN, 'GET', `/jobs?queue=list-a&limit=2&after=${first.next}`),
    );
    assert.deepEqual(
      [...first.items, ...second.items].map((j) => j.id),
      a.items.map((j) => j.id),
    );
    assert.equal(second.next, null);

    const b = ok<{ items: { id: number; dedupeKey: string; payload: unknown }[] }>(
      await call(ADMIN, 'GET', '/jobs?queue=list-b'),
    );
    assert.deepEqual(
      b.items.map((j) => [j.id, j.dedupeKey, j.payload]),
      [[other, 'only-once', null]],
    );
  });

  it('shows one job, and validates ids, states and cursors', async () => {
    const id = await reg.services.jobs.enqueue('show', { hello: 'world' }, { maxAttempts: 7 });
    assert.ok(id !== null);
    const job = ok(await call(ADMIN, 'GET', `/jobs/${id}`));
    assert.equal(job.id, id);
    assert.equal(job.queue, 'show');
    assert.equal(job.state, 'queued');
    assert.deepEqual(job.payload, { hello: 'world' });
    assert.equal(job.attempts, 0);
    assert.equal(job.maxAttempts, 7);
    assert.equal(job.finishedAt, null);

    assertError(await call(ADMIN, 'GET', '/jobs/999999'), 404, 'NAME_UNKNOWN');
    assertError(await call(ADMIN, 'GET', '/jobs/abc'), 400, 'UNSUPPORTED');
    assertError(await call(ADMIN, 'POST', '/jobs/0/retry'), 400, 'UNSUPPORTED');
    assertError(await call(ADMIN, 'GET', '/jobs?state=sleeping'), 400, 'UNSUPPORTED');
    assertError(await call(ADMIN, 'GET', '/jobs?after=x'), 400, 'UNSUPPORTED');
    assertError(await call(ADMIN, 'GET', '/jobs?limit=0'), 400, 'PAGINATION_NUMBER_INVALID');
  });

  it('cancels and redrives jobs by their state rules, and audits both', async () => {
    const id = await reg.services.jobs.enqueue('redrive', null);
    assert.ok(id !== null);
    assertError(await call(ADMIN, 'POST', `/jobs/${id}/retry`), 409, 'UNSUPPORTED');
    const cancelled = ok(await call(ADMIN, 'POST', `/jobs/${id}/cancel`));
    assert.equal(cancelled.state, 'cancelled');
    assert.equal(typeof cancelled.finishedAt, 'string');
    assertError(await call(ADMIN, 'POST', `/jobs/${id}/cancel`), 409, 'UNSUPPORTED');
    const retried = ok(await call(ADMIN, 'POST', `/jobs/${id}/retry`));
    assert.equal(retried.state, 'queued');
    assert.equal(retried.finishedAt, null);

    const dead = await deadJob('redrive-dead');
    const redriven = ok(await call(ADMIN, 'POST', `/jobs/${dead}/retry`));
    assert.equal(redriven.state, 'queued');
    assert.equal(redriven.attempts, 0);
    assert.equal(redriven.lastError, 'Error: boom');

    assertError(await call(ADMIN, 'POST', '/jobs/999999/retry'), 404, 'NAME_UNKNOWN');
    assertError(await call(ADMIN, 'POST', '/jobs/999999/cancel'), 404, 'NAME_UNKNOWN');

    const audit = ok<{ events: { action: string; target: string; actor: string; success: boolean }[] }>(
      await reg.inject({
        method: 'GET',
        url: `${PREFIX}/audit?action=job.retry&limit=100`,
        headers: {
          authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`,
        },
      }),
    );
    assert.deepEqual(
      audit.events.map((e) => [e.action, e.target, e.actor, e.success]).sort(),
      [
        ['job.retry', String(dead), ADMIN.user, true],
        ['job.retry', String(id), ADMIN.user, true],
      ].sort(),
    );
  });

  it('refuses everyone but system administrators', async () => {
    const id = await reg.services.jobs.enqueue('guarded', null);
    assert.ok(id !== null);
    for (const [method, url] of [
      ['GET', '/jobs'],
      ['GET', `/jobs/${id}`],
      ['POST', `/jobs/${id}/retry`],
      ['POST', `/jobs/${id}/cancel`],
    ] as const) {
      assertError(await call(USER, method, url), 403, 'DENIED');
      assertError(await call('anonymous', method, url), 401, 'UNAUTHORIZED');
    }
    assert.equal((await jobs().get(id))?.state, 'queued', 'the refused cancel changed nothing');
  });
});
