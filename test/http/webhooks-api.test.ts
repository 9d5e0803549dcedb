/**
 * The webhook endpoints of the admin API (/api/v1/webhooks, /api/v1/namespaces/{ns}/webhooks) through
 * `inject()` with real authentication (`auth.mode: token`, Basic credentials): who may manage global and
 * namespace endpoints, validation (with the SSRF guard, test events and redelivery as injected fakes), secrets
 * shown only on create and rotate, masked header values, the delivery log, redelivery of dead deliveries only,
 * and the audit records. Every response is checked against `docs/api/openapi.yaml`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Actor } from '../../src/admin/admin-service.ts';
import type { WebhookServiceDeps } from '../../src/admin/webhook-service.ts';
import { bootstrapAdmin } from '../../src/auth/bootstrap.ts';
import { AccessControl } from '../../src/http/auth/access-control.ts';
import { registerAdminApi } from '../../src/http/admin/api.ts';
import { registerErrorEnvelope } from '../../src/http/plugins/error-envelope.ts';
import { registerRawBody } from '../../src/http/plugins/raw-body.ts';
import { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import type { DeliveryAttemptInput, WebhookRecord, WebhookStore } from '../../src/metadata/webhook-store.ts';
import { assertError, createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import { addNamespace, addRobot, addUser } from '../helpers/auth.ts';
import { ADMIN_PREFIX, conforms } from '../helpers/openapi.ts';

type Who = { user: string; password: string } | 'anonymous';
type Body = Record<string, unknown>;

const ADMIN = { user: 'admin', password: 'admin-password' };
const NSADMIN = { user: 'nsadmin', password: 'nsadmin-password' };
const DEV = { user: 'dev', password: 'dev-password' };
const ROBOT = { user: 'robot$ci', password: 'robot-secret-123' };
const HEADER_VALUE = 'Bearer receiver-token-1234';
const SECRET_RE = /^whsec_[A-Za-z0-9+/]+=*$/;

describe('webhooks admin API', () => {
  let reg: TestRegistry;
  let app: FastifyInstance;
  let store: WebhookStore;
  const sent: { webhook: WebhookRecord; actor: Actor }[] = [];
  const redelivered: number[] = [];
  /** Jobs the fake job store no longer holds as dead. */
  const notDead = new Set<number>();
  /** Every secret seen: no later response but the rotation that replaces it may show it. */
  const secrets = new Set<string>();

  const deps = (): WebhookServiceDeps => ({
    store,
    secretGracePeriod: reg.config.webhooks.secretGracePeriod,
    checkUrl: async (url) => {
      if (url.hostname === '10.0.0.7' || url.hostname === 'metadata.internal')
        throw new Error(`${url.hostname} is a private address`);
    },
    sendTest: async (webhook, actor) => {
      sent.push({ webhook, actor });
    },
    redeliver: async (jobId) => {
      redelivered.push(jobId);
      if (notDead.has(jobId)) return false;
      notDead.add(jobId);
      return true;
    },
  });

  async function call(who: Who, method: string, url: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (who !== 'anonymous')
      headers.authorization = `Basic ${Buffer.from(`${who.user}:${who.password}`).toString('base64')}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await app.inject({
      method: method as 'GET',
      url: `${ADMIN_PREFIX}${url}`,
      headers,
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    conforms(method, `${ADMIN_PREFIX}${url}`, res);
    assert.ok(!res.body.includes(HEADER_VALUE), `${method} ${url} shows a header value: ${res.body}`);
    const shown =
      res.statusCode < 400 && res.body !== '' ? (json(res) as { secret?: string }).secret : undefined;
    for (const s of secrets) assert.ok(!res.body.includes(s), `${method} ${url} shows an earlier secret`);
    if (shown !== undefined) secrets.add(shown);
    return res;
  }
  async function ok(res: Response, status = 200): Promise<Body> {
    assert.equal(res.statusCode, status, `${res.raw.req.method} ${res.raw.req.url}: ${res.body}`);
    return res.body === '' ? {} : json(res);
  }
  function invalidField(res: Response, field: string, message?: RegExp): void {
    assertError(res, 400, 'UNSUPPORTED');
    const e = (json(res) as { errors: { message: string; detail?: { field?: string } }[] }).errors[0];
    assert.equal(e?.detail?.field, field, res.body);
    if (message) assert.match(e?.message ?? '', message);
  }
  async function auditOf(action: string) {
    return (await reg.services.auth.store.queryAudit({ action, limit: 1000 })).items;
  }
  const attempt = (webhookId: number, o: Partial<DeliveryAttemptInput> = {}): DeliveryAttemptInput => ({
    webhookId,
    eventId: `ev-${Math.random().toString(36).slice(2)}`,
    eventType: 'manifest.pushed',
    jobId: null,
    attempt: 1,
    outcome: 'delivered',
    statusCode: 200,
    durationMs: 12,
    error: null,
    responseSnippet: 'ok',
    ...o,
  });

  before(async () => {
    reg = await createTestRegistry({
      'auth.mode': 'token',
      'auth.maxFailedLogins': 1000,
      'auth.cacheTtl': '60s',
    });
    assert.ok(reg.services.metadata instanceof KyselyMetadataStore);
    store = reg.services.metadata.webhookStore();
    assert.equal(await bootstrapAdmin(reg.services.auth.store, ADMIN.user, ADMIN.password), 'created');
    await addUser(reg, NSADMIN.user, NSADMIN.password);
    await addUser(reg, DEV.user, DEV.password);
    await addRobot(reg, ROBOT.user, ROBOT.password);
    await addNamespace(reg, 'team', 'private', [
      ['user', NSADMIN.user, 'admin'],
      ['user', DEV.user, 'developer'],
      ['robot', ROBOT.user, 'admin'],
    ]);
    await addNamespace(reg, 'other', 'private');

    // The real app builds the admin API without the webhook services until they are wired; this one has them.
    app = Fastify({ logger: false, exposeHeadRoutes: false });
    registerRawBody(app, { bodyIdleTimeout: reg.config.http.bodyIdleTimeout });
    registerErrorEnvelope(app);
    app.addHook('onRequest', async (_request, reply) => {
      reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    });
    const access = new AccessControl({
      mode: reg.config.auth.mode,
      authenticator: reg.services.auth.authenticator,
      authorizer: reg.services.auth.authorizer,
      tokens: reg.services.auth.tokens,
      audit: reg.services.auth.audit,
      realm: reg.config.auth.token.realm,
      service: reg.config.auth.token.service,
      baseUrl: () => 'http://registry.test',
    });
    registerAdminApi(app, { config: reg.config, access, auth: reg.services.auth, webhooks: deps() });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await reg?.dispose();
  });

  it('the app as createApp builds it serves the webhook routes', async () => {
    const res = await reg.inject({
      method: 'GET',
      url: `${ADMIN_PREFIX}/webhooks`,
      headers: { authorization: `Basic ${Buffer.from('admin:admin-password').toString('base64')}` },
    });
    assert.equal(res.statusCode, 200, res.body);
    conforms('GET', `${ADMIN_PREFIX}/webhooks`, res);
  });

  it('a system admin creates a global endpoint: the secret is returned once, never by a GET', async () => {
    const created = await ok(
      await call(ADMIN, 'POST', '/webhooks', {
        name: 'ci',
        url: 'https://hooks.example.com/berth?token=abc',
        format: 'cloudevents',
        events: ['manifest.pushed', 'tag.deleted'],
        repositoryGlob: 'team/**',
        tagGlob: 'v*',
        headers: { Authorization: HEADER_VALUE },
      }),
      201,
    );
    const secret = created.secret as string;
    assert.match(secret, SECRET_RE);
    assert.equal(Buffer.from(secret.slice('whsec_'.length), 'base64').length, 32);
    assert.equal(created.namespace, null);
    assert.equal(created.secretSet, true);
    assert.deepEqual(created.headers, { Authorization: '********' });
    assert.equal(created.createdBy, 'admin');
    assert.equal(created.enabled, true);
    const id = created.id as number;
    const stored = await store.get(id);
    assert.equal(stored?.secret, secret);
    assert.deepEqual(stored?.headers, { Authorization: HEADER_VALUE });
    assert.deepEqual(stored?.events, ['manifest.pushed', 'tag.deleted']);

    const got = await ok(await call(ADMIN, 'GET', `/webhooks/${id}`));
    assert.equal(got.secret, undefined);
    assert.equal(got.url, 'https://hooks.example.com/berth?token=abc');
    const list = await ok(await call(ADMIN, 'GET', '/webhooks'));
    assert.ok((list.items as Body[]).some((w) => w.id === id));

    const [audit] = await auditOf('webhook.create');
    assert.equal(audit?.actor, 'admin');
    assert.equal(audit?.target, null);
    const detail = JSON.stringify(audit?.detail);
    assert.ok(
      !detail.includes(secret) && !detail.includes(HEADER_VALUE) && !detail.includes('token=abc'),
      detail,
    );
    assert.match(detail, /"headers":\["Authorization"\]/);

    assertError(
      await call(ADMIN, 'POST', '/webhooks', { name: 'ci', url: 'https://x.example.com/' }),
      409,
      'UNSUPPORTED',
    );
    assertError(await call('anonymous', 'GET', '/webhooks'), 401, 'UNAUTHORIZED');
  });

  it('a namespace admin manages their namespace endpoints only; developers and robots are refused', async () => {
    const mine = await ok(
      await call(NSADMIN, 'POST', '/namespaces/team/webhooks', {
        name: 'deploy',
        url: 'https://deploy.example.com/',
      }),
      201,
    );
    assert.equal(mine.namespace, 'team');
    assert.equal(mine.format, 'distribution');
    assert.deepEqual(mine.events, []);
    assert.equal(mine.repositoryGlob, '**');
    assert.equal(mine.tagGlob, '*');
    const theirs = await ok(
      await call(ADMIN, 'POST', '/namespaces/other/webhooks', {
        name: 'deploy',
        url: 'https://other.example.com/',
      }),
      201,
    );

    assertError(
      await call(NSADMIN, 'POST', '/namespaces/other/webhooks', { name: 'x', url: 'https://a.example.com/' }),
      403,
      'DENIED',
    );
    assertError(
      await call(NSADMIN, 'POST', '/webhooks', { name: 'x', url: 'https://a.example.com/' }),
      403,
      'DENIED',
    );
    for (const who of [DEV, ROBOT]) {
      assertError(
        await call(who, 'POST', '/namespaces/team/webhooks', { name: 'x', url: 'https://a.example.com/' }),
        403,
        'DENIED',
      );
      assertError(await call(who, 'GET', '/namespaces/team/webhooks'), 403, 'DENIED');
      assertError(await call(who, 'GET', `/webhooks/${mine.id as number}`), 403, 'DENIED');
    }
    assertError(await call(ROBOT, 'GET', '/webhooks'), 403, 'DENIED');
    assert.deepEqual((await ok(await call(DEV, 'GET', '/webhooks'))).items, []);

    const seen = await ok(await call(NSADMIN, 'GET', '/webhooks'));
    assert.deepEqual(
      (seen.items as Body[]).map((w) => w.id),
      [mine.id],
    );
    const ns = await ok(await call(NSADMIN, 'GET', '/namespaces/team/webhooks'));
    assert.deepEqual(
      (ns.items as Body[]).map((w) => w.id),
      [mine.id],
    );
    assertError(await call(NSADMIN, 'GET', '/webhooks?namespace=other'), 403, 'DENIED');
    const filtered = await ok(await call(ADMIN, 'GET', '/webhooks?namespace=other'));
    assert.deepEqual(
      (filtered.items as Body[]).map((w) => w.id),
      [theirs.id],
    );
    assertError(await call(NSADMIN, 'GET', `/webhooks/${theirs.id as number}`), 403, 'DENIED');
    assertError(
      await call(NSADMIN, 'PATCH', `/webhooks/${theirs.id as number}`, { enabled: false }),
      403,
      'DENIED',
    );
    const global = (await store.getByName(null, 'ci')) as WebhookRecord;
    assertError(await call(NSADMIN, 'DELETE', `/webhooks/${global.id}`), 403, 'DENIED');
    assertError(await call(NSADMIN, 'POST', `/webhooks/${global.id}/rotate-secret`), 403, 'DENIED');
    assert.equal((await store.get(global.id))?.enabled, true);

    const denied = (await auditOf('webhook.update')).filter((e) => !e.success);
    assert.equal(denied.length, 1);
    assert.equal(denied[0]?.actor, 'nsadmin');
    assert.equal(denied[0]?.target, 'other');
    assert.equal((await auditOf('webhook.delete')).filter((e) => !e.success).length, 1);

    // Paging through what a namespace admin sees: the cursor is an id.
    const second = await ok(
      await call(NSADMIN, 'POST', '/namespaces/team/webhooks', {
        name: 'deploy2',
        url: 'https://deploy.example.com/2',
      }),
      201,
    );
    const p1 = await ok(await call(NSADMIN, 'GET', '/webhooks?limit=1'));
    assert.deepEqual(
      (p1.items as Body[]).map((w) => w.id),
      [mine.id],
    );
    assert.equal(p1.next, String(mine.id));
    const p2 = await ok(await call(NSADMIN, 'GET', `/webhooks?limit=1&after=${p1.next as string}`));
    assert.deepEqual(
      (p2.items as Body[]).map((w) => w.id),
      [second.id],
    );
    assert.equal(p2.next, null);
  });

  it('refuses invalid input with 400 naming the field (SSRF refusal included)', async () => {
    const post = (body: Body) => call(ADMIN, 'POST', '/namespaces/team/webhooks', { name: 'v', ...body });
    invalidField(await post({ url: 'ftp://files.example.com/' }), 'url', /http or https/);
    invalidField(await post({ url: '/relative' }), 'url');
    invalidField(await post({ url: 'https://user:pw@hooks.example.com/' }), 'url', /credentials/);
    invalidField(await post({ url: `https://hooks.example.com/${'a'.repeat(2048)}` }), 'url', /2048/);
    invalidField(
      await post({ url: 'http://10.0.0.7/hook' }),
      'url',
      /private address.*webhooks\.allowedHosts/,
    );
    invalidField(await post({ url: 'https://metadata.internal/' }), 'url', /webhooks\.allowedHosts/);
    const url = 'https://hooks.example.com/';
    invalidField(await post({ url, headers: { 'Webhook-Signature': 'x' } }), 'headers', /reserved/);
    invalidField(await post({ url, headers: { 'Content-Type': 'text/plain' } }), 'headers', /reserved/);
    invalidField(await post({ url, headers: { 'Bad Name': 'x' } }), 'headers', /header name/);
    invalidField(await post({ url, headers: { 'X-A': 'line\r\nbreak' } }), 'headers', /value/);
    invalidField(await post({ url, headers: { 'X-A': '1', 'x-a': '2' } }), 'headers', /twice/);
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`X-H${i}`, 'v']));
    invalidField(await post({ url, headers: many }), 'headers', /at most 20/);
    invalidField(
      await post({ url, events: ['manifest.pushed', 'image.exploded'] }),
      'events',
      /unknown event type/,
    );
    invalidField(await post({ url, events: ['manifest.pulled'] }), 'events', /includePulls/);
    invalidField(await post({ url, format: 'xml' }), 'format');
    invalidField(await post({ url, repositoryGlob: '' }), 'repositoryGlob');
    invalidField(await post({ url, tagGlob: 'x'.repeat(256) }), 'tagGlob');
    invalidField(await call(ADMIN, 'POST', '/namespaces/team/webhooks', { name: 'Bad Name', url }), 'name');
    invalidField(await post({ url, unknown: 1 }), 'unknown');
    invalidField(await call(ADMIN, 'GET', '/webhooks/abc'), 'id');
    assert.equal(await store.getByName('team', 'v'), null);

    const pulls = await ok(await post({ url, events: ['manifest.pulled'], includePulls: true }), 201);
    assert.deepEqual(pulls.events, ['manifest.pulled']);
    assert.equal(pulls.includePulls, true);
  });

  it('updates (header values kept when sent back masked), disables, enables and deletes', async () => {
    const w = await ok(
      await call(NSADMIN, 'POST', '/namespaces/team/webhooks', {
        name: 'upd',
        url: 'https://a.example.com/',
        headers: { Authorization: HEADER_VALUE, 'X-Env': 'prod' },
      }),
      201,
    );
    const id = w.id as number;
    const changed = await ok(
      await call(NSADMIN, 'PATCH', `/webhooks/${id}`, {
        url: 'https://b.example.com/hook',
        events: ['tag.moved'],
        tagGlob: 'release-*',
        headers: { Authorization: '********', 'X-Env': 'staging' },
        enabled: false,
      }),
    );
    assert.equal(changed.url, 'https://b.example.com/hook');
    assert.deepEqual(changed.events, ['tag.moved']);
    assert.equal(changed.enabled, false);
    assert.equal(changed.disabledReason, 'disabled by nsadmin');
    const stored = await store.get(id);
    assert.deepEqual(stored?.headers, { Authorization: HEADER_VALUE, 'X-Env': 'staging' });
    invalidField(
      await call(NSADMIN, 'PATCH', `/webhooks/${id}`, { headers: { 'X-New': '********' } }),
      'headers',
    );
    invalidField(
      await call(NSADMIN, 'PATCH', `/webhooks/${id}`, { url: 'http://10.0.0.7/' }),
      'url',
      /allowedHosts/,
    );
    invalidField(await call(NSADMIN, 'PATCH', `/webhooks/${id}`, { events: ['blob.pulled'] }), 'events');

    const unchanged = await ok(await call(NSADMIN, 'PATCH', `/webhooks/${id}`, {}));
    assert.equal(unchanged.updatedAt, changed.updatedAt);
    const enabled = await ok(await call(NSADMIN, 'PATCH', `/webhooks/${id}`, { enabled: true }));
    assert.equal(enabled.enabled, true);
    assert.equal(enabled.disabledReason, null);

    const updates = (await auditOf('webhook.update')).filter((e) => e.success);
    assert.equal(updates.length, 2);
    const detail = JSON.stringify(updates.map((e) => e.detail));
    assert.ok(!detail.includes(HEADER_VALUE) && !detail.includes('staging'), detail);
    assert.match(detail, /"headers":\["Authorization","X-Env"\]/);
    assert.equal(updates[0]?.target, 'team');

    await ok(await call(NSADMIN, 'DELETE', `/webhooks/${id}`), 204);
    assertError(await call(NSADMIN, 'GET', `/webhooks/${id}`), 404, 'NAME_UNKNOWN');
    assertError(await call(NSADMIN, 'DELETE', `/webhooks/${id}`), 404, 'NAME_UNKNOWN');
    assertError(await call(ADMIN, 'PATCH', '/webhooks/999999', { enabled: true }), 404, 'NAME_UNKNOWN');
    assert.equal((await auditOf('webhook.delete')).filter((e) => e.success).length, 1);
  });

  it('rotates the secret: the new one is shown once, the old one signs until the grace deadline', async () => {
    const w = await ok(
      await call(NSADMIN, 'POST', '/namespaces/team/webhooks', {
        name: 'rot',
        url: 'https://a.example.com/',
      }),
      201,
    );
    const id = w.id as number;
    const old = w.secret as string;
    const start = Date.now();
    const rotated = await ok(await call(NSADMIN, 'POST', `/webhooks/${id}/rotate-secret`));
    assert.match(rotated.secret as string, SECRET_RE);
    assert.notEqual(rotated.secret, old);
    const until = Date.parse(rotated.previousSecretUntil as string);
    const grace = reg.config.webhooks.secretGracePeriod;
    assert.ok(until >= start + grace && until <= Date.now() + grace, rotated.previousSecretUntil as string);
    const stored = await store.get(id);
    assert.equal(stored?.secret, rotated.secret);
    assert.equal(stored?.previousSecret, old);
    assert.equal(stored?.previousSecretUntil?.getTime(), until);
    const got = await ok(await call(NSADMIN, 'GET', `/webhooks/${id}`));
    assert.equal(got.previousSecretUntil, rotated.previousSecretUntil);
    assert.equal(got.secret, undefined);
    const [audit] = (await auditOf('webhook.rotate-secret')).filter((e) => e.success);
    const detail = JSON.stringify(audit?.detail);
    assert.ok(!detail.includes(old) && !detail.includes(rotated.secret as string), detail);
    assert.equal(audit?.target, 'team');
  });

  it('lists the delivery log newest first with a cursor and an outcome filter; redelivers dead ones only', async () => {
    const w = await ok(
      await call(NSADMIN, 'POST', '/namespaces/team/webhooks', {
        name: 'log',
        url: 'https://a.example.com/',
      }),
      201,
    );
    const other = await ok(
      await call(NSADMIN, 'POST', '/namespaces/team/webhooks', {
        name: 'log2',
        url: 'https://a.example.com/',
      }),
      201,
    );
    const id = w.id as number;
    await store.recordDelivery(attempt(id, { jobId: 11, outcome: 'delivered' }), 50);
    await store.recordDelivery(
      attempt(id, { jobId: 12, outcome: 'dead', attempt: 8, statusCode: 500, error: 'HTTP 500' }),
      50,
    );
    await store.recordDelivery(
      attempt(id, { jobId: 13, outcome: 'failed', statusCode: null, error: 'timeout' }),
      50,
    );
    await store.recordDelivery(attempt(id, { jobId: 14, outcome: 'dead', attempt: 8 }), 50);
    await store.recordDelivery(attempt(other.id as number, { jobId: 99, outcome: 'dead' }), 50);

    const all = await ok(await call(NSADMIN, 'GET', `/webhooks/${id}/deliveries`));
    const items = all.items as Body[];
    assert.deepEqual(
      items.map((d) => d.jobId),
      [14, 13, 12, 11],
    );
    assert.equal(all.next, null);
    const p1 = await ok(await call(NSADMIN, 'GET', `/webhooks/${id}/deliveries?limit=3`));
    assert.deepEqual(
      (p1.items as Body[]).map((d) => d.jobId),
      [14, 13, 12],
    );
    const p2 = await ok(
      await call(NSADMIN, 'GET', `/webhooks/${id}/deliveries?limit=3&after=${p1.next as string}`),
    );
    assert.deepEqual(
      (p2.items as Body[]).map((d) => d.jobId),
      [11],
    );
    assert.equal(p2.next, null);
    const dead = await ok(await call(NSADMIN, 'GET', `/webhooks/${id}/deliveries?outcome=dead`));
    assert.deepEqual(
      (dead.items as Body[]).map((d) => d.jobId),
      [14, 12],
    );
    invalidField(await call(NSADMIN, 'GET', `/webhooks/${id}/deliveries?outcome=exploded`), 'outcome');
    assertError(await call(DEV, 'GET', `/webhooks/${id}/deliveries`), 403, 'DENIED');

    const byJob = (job: number) => items.find((d) => d.jobId === job)?.id as number;
    const res = await ok(
      await call(NSADMIN, 'POST', `/webhooks/${id}/deliveries/${byJob(12)}/redeliver`),
      202,
    );
    assert.deepEqual(res, { webhookId: id, deliveryId: byJob(12), jobId: 12 });
    assert.deepEqual(redelivered, [12]);
    // Already moved back to the queue: the job store says it is not dead any more.
    assertError(
      await call(NSADMIN, 'POST', `/webhooks/${id}/deliveries/${byJob(12)}/redeliver`),
      409,
      'UNSUPPORTED',
    );
    assertError(
      await call(NSADMIN, 'POST', `/webhooks/${id}/deliveries/${byJob(11)}/redeliver`),
      409,
      'UNSUPPORTED',
    );
    assertError(
      await call(NSADMIN, 'POST', `/webhooks/${id}/deliveries/${byJob(13)}/redeliver`),
      409,
      'UNSUPPORTED',
    );
    assert.deepEqual(redelivered, [12, 12], 'delivered and failed attempts never reach the job store');
    const otherDelivery = (
      (await ok(await call(NSADMIN, 'GET', `/webhooks/${other.id as number}/deliveries`))).items as Body[]
    )[0]?.id as number;
    assertError(
      await call(NSADMIN, 'POST', `/webhooks/${id}/deliveries/${otherDelivery}/redeliver`),
      404,
      'NAME_UNKNOWN',
    );
    assertError(
      await call(NSADMIN, 'POST', `/webhooks/${id}/deliveries/999999/redeliver`),
      404,
      'NAME_UNKNOWN',
    );
    assertError(await call(DEV, 'POST', `/webhooks/${id}/deliveries/${byJob(14)}/redeliver`), 403, 'DENIED');
    assert.deepEqual(redelivered, [12, 12]);
    const [audit] = (await auditOf('webhook.redeliver')).filter((e) => e.success);
    assert.equal((audit?.detail as Body | null)?.jobId, 12);
  });

  it('sends a test event through the injected function, as the caller', async () => {
    const w = await ok(
      await call(NSADMIN, 'POST', '/namespaces/team/webhooks', {
        name: 'testme',
        url: 'https://a.example.com/',
      }),
      201,
    );
    const id = w.id as number;
    assert.deepEqual(await ok(await call(NSADMIN, 'POST', `/webhooks/${id}/test`), 202), { webhookId: id });
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.webhook.id, id);
    assert.equal(sent[0]?.webhook.url, 'https://a.example.com/');
    assert.equal(sent[0]?.actor.principal?.name, 'nsadmin');
    const global = (await store.getByName(null, 'ci')) as WebhookRecord;
    assertError(await call(NSADMIN, 'POST', `/webhooks/${global.id}/test`), 403, 'DENIED');
    assertError(await call(DEV, 'POST', `/webhooks/${id}/test`), 403, 'DENIED');
    assertError(await call(ADMIN, 'POST', '/webhooks/999999/test'), 404, 'NAME_UNKNOWN');
    assert.equal(sent.length, 1);
    assert.equal((await auditOf('webhook.test')).filter((e) => e.success).length, 1);
  });
});
