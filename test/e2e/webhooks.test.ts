/**
 * Webhooks end to end, with real Berth processes and a real HTTP receiver:
 * - The outbox survives a crash: an instance that runs no background work commits a push and is SIGKILLed; the
 *   restarted instance delivers the push's event.
 * - Three instances sharing PostgreSQL (and one blob directory) deliver each event to each endpoint exactly once
 *   in normal operation; when the instance delivering an event is SIGKILLed mid-delivery (the receiver holds the
 *   request), another instance delivers it once its lease expires: every event arrives at least once.
 *
 * The second part needs PostgreSQL at BERTH_TEST_POSTGRES_URL (skipped with the reason when it does not answer,
 * failing under CI).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createPostgresStore, createSqliteStore } from '../../src/metadata/dialects.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import type { WebhookFormat } from '../../src/metadata/webhook-store.ts';
import { generateSecret, verify } from '../../src/webhooks/signing.ts';
import { imageManifest, pushBlob, pushManifest } from '../helpers/http-client.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import { startBerth, type RunningBerth } from '../helpers/server.ts';
import { startReceiver, type ReceivedRequest, type WebhookReceiver } from '../helpers/webhook-receiver.ts';

const ALLOW_LOOPBACK = { BERTH_WEBHOOKS_ALLOWED_HOSTS: '127.0.0.1', BERTH_LOG_ACCESS_LOG: 'false' };

/** Pushes a one-layer image to `repo:tag` through `url`; returns the manifest digest. */
async function pushImage(url: string, repo: string, tag: string): Promise<string> {
  const layer = randomBytes(1024);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', n: randomBytes(4).toString('hex') }),
  );
  const layerRef = { digest: await pushBlob(url, repo, layer), size: layer.length };
  const configRef = { digest: await pushBlob(url, repo, config), size: config.length };
  return pushManifest(url, repo, tag, imageManifest(configRef, [layerRef]));
}

async function addWebhook(
  store: KyselyMetadataStore,
  name: string,
  url: string,
  format: WebhookFormat,
): Promise<string> {
  const secret = generateSecret();
  await store.webhookStore().create({
    name,
    namespace: null,
    url,
    format,
    events: ['manifest.pushed'],
    repositoryGlob: '**',
    tagGlob: '*',
    includePulls: false,
    headers: {},
    secret,
    createdBy: null,
  });
  return secret;
}

/** The digest a verified delivery reports (either format). */
function pushedDigest(request: ReceivedRequest, secret: string): string {
  verify(secret, request.headers, request.body);
  const body = JSON.parse(request.body) as {
    events?: { target: { digest: string } }[];
    data?: { digest: string };
  };
  return body.events?.[0]?.target.digest ?? (body.data?.digest as string);
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('webhooks: the outbox survives SIGKILL', () => {
  let receiver: WebhookReceiver;
  let dataDir: string;
  let berth: RunningBerth | undefined;

  before(async () => {
    receiver = await startReceiver();
    dataDir = await mkdtemp(path.join(tmpdir(), 'berth-outbox-'));
  });
  after(async () => {
    await berth?.stop();
    await receiver.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('a push committed by an instance killed before any delivery is delivered after the restart', async () => {
    // No background work on the first instance: its commit reaches the outbox and nothing further.
    berth = await startBerth({ dataDir, env: { ...ALLOW_LOOPBACK, BERTH_JOBS_ENABLED: 'false' } });
    const store = createSqliteStore(path.join(dataDir, 'berth.db'));
    let secret: string;
    try {
      secret = await addWebhook(store, 'hook', `${receiver.url}/hook`, 'cloudevents');
    } finally {
      await store.close();
    }
    const digest = await pushImage(berth.url, 'outbox/app', 'v1');
    await berth.kill();
    assert.equal(receiver.requests.length, 0, 'nothing was delivered before the kill');

    berth = await startBerth({ dataDir, env: ALLOW_LOOPBACK });
    await until('the delivery after the restart', () => receiver.requests.length > 0);
    const [delivery] = receiver.requests;
    assert.equal(pushedDigest(delivery as ReceivedRequest, secret), digest);
  });
});

const pgSkip = await postgresSkipReason();

describe('webhooks: three instances on PostgreSQL', { skip: pgSkip }, () => {
  const schema = `berth_wh_${randomBytes(4).toString('hex')}`;
  let blobs: string;
  let store: KyselyMetadataStore;
  let admin: pg.Pool;
  let receiver: WebhookReceiver;
  /** Requests to this path are held (never answered) while set. */
  let holdPath: string | null = null;
  /** The requests held (never answered). */
  const held = new Set<ReceivedRequest>();
  const secrets = new Map<string, string>();
  const instances: RunningBerth[] = [];
  const dataDirs: string[] = [];

  const env = (): Record<string, string> => ({
    ...ALLOW_LOOPBACK,
    BERTH_LOG_LEVEL: 'info',
    BERTH_METADATA_DRIVER: 'postgres',
    BERTH_METADATA_POSTGRES_URL: POSTGRES_URL,
    BERTH_METADATA_POSTGRES_SCHEMA: schema,
    BERTH_STORAGE_FILESYSTEM_ROOT: blobs,
    BERTH_JOBS_POLL_INTERVAL: '200ms',
    BERTH_JOBS_LEASE_DURATION: '3s',
  });

  before(async () => {
    blobs = await mkdtemp(path.join(tmpdir(), 'berth-wh-blobs-'));
    admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
    receiver = await startReceiver((request) => {
      if (holdPath === null || request.path !== holdPath) return { status: 204 };
      held.add(request);
      return 'hang';
    });
    for (let i = 0; i < 3; i++) {
      const dataDir = await mkdtemp(path.join(tmpdir(), 'berth-wh-'));
      dataDirs.push(dataDir);
      instances.push(await startBerth({ dataDir, env: env() }));
    }
    store = createPostgresStore(POSTGRES_URL, { schema });
    secrets.set('/a', await addWebhook(store, 'a', `${receiver.url}/a`, 'distribution'));
    secrets.set('/b', await addWebhook(store, 'b', `${receiver.url}/b`, 'cloudevents'));
  });

  after(async () => {
    await Promise.all(instances.map((i) => i.stop()));
    await store.close();
    await receiver.close();
    await admin.query(`drop schema if exists ${schema} cascade`);
    await admin.end();
    await Promise.all([blobs, ...dataDirs].map((d) => rm(d, { recursive: true, force: true })));
  });

  /** Digests delivered (and verified) to `path`, one entry per request answered 2xx. */
  const delivered = (path: string): string[] =>
    receiver.requests
      .filter((r) => r.path === path && !held.has(r))
      .map((r) => pushedDigest(r, secrets.get(path) as string));

  it('deliver each event to each endpoint once', async () => {
    const digests: string[] = [];
    for (let i = 0; i < 6; i++) {
      digests.push(await pushImage((instances[i % 3] as RunningBerth).url, `wh/app${i}`, 'v1'));
    }
    for (const path of ['/a', '/b']) {
      await until(`every event at ${path}`, () => digests.every((d) => delivered(path).includes(d)));
    }
    // Nothing is left to deliver, so nothing more can arrive: the counts are final.
    await until('an empty queue', async () => {
      const { rows } = await admin.query(
        `select count(*)::int as n from ${schema}.jobs where queue = 'webhook-delivery' and state <> 'succeeded'`,
      );
      return (rows[0] as { n: number }).n === 0;
    });
    const { rows: pending } = await admin.query(
      `select count(*)::int as n from ${schema}.events where dispatched_at is null`,
    );
    assert.equal((pending[0] as { n: number }).n, 0);
    for (const path of ['/a', '/b']) assert.deepEqual([...delivered(path)].sort(), [...digests].sort());
  });

  it('deliver an event at least once when the instance delivering it is SIGKILLed mid-delivery', async () => {
    holdPath = '/a';
    const digest = await pushImage((instances[0] as RunningBerth).url, 'wh/killed', 'v1');
    await until('the held delivery', () =>
      receiver.requests.some(
        (r) => r.path === '/a' && pushedDigest(r, secrets.get('/a') as string) === digest,
      ),
    );
    // The instance holding the job's lease is the one delivering.
    const { rows } = await admin.query(
      `select lease_owner from ${schema}.jobs where queue = 'webhook-delivery' and state = 'running'`,
    );
    const owner = (rows[0] as { lease_owner: string } | undefined)?.lease_owner;
    assert.ok(owner, 'a delivery job is running');
    const victim = instances.find((i) => i.output().includes(owner));
    assert.ok(victim, `the instance ${owner} is one of the three`);
    await victim.kill();
    instances.splice(instances.indexOf(victim), 1);
    holdPath = null;
    await until('the delivery by another instance', () => delivered('/a').includes(digest), 90_000);
    await until('the other endpoint', () => delivered('/b').includes(digest));
  });
});
