/**
 * Replication between real registries on loopback: Berth to CNCF Distribution 2.8 (no referrers API: the cosign
 * tag scheme), Distribution to Berth, and Berth to Berth on push events with deletions; a multi-platform index
 * with a signature-style referrer each time, compared byte for byte on both sides. And a Berth killed (SIGKILL)
 * in the middle of a throttled execution, restarted on the same data directory, finishing the execution. And two
 * instances sharing PostgreSQL taking executions from one queue, each execution and task run once.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { after, before, describe, it } from 'node:test';
import { createRegistryClient } from '../../src/remote/http-registry-client.ts';
import type { RegistryClient } from '../../src/remote/registry-client.ts';
import { startDistribution, type RunningRegistry } from '../helpers/distribution.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import {
  adminApi,
  digestOf,
  eventually,
  pushIndexWithReferrer,
  waitForExecution,
  type AdminApi,
  type PushedIndex,
} from '../helpers/replication.ts';
import { startBerth, type RunningBerth } from '../helpers/server.ts';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { skipOrFail } from '../helpers/skip.ts';

const ADMIN = { username: 'admin', password: 'replication-admin-pw' };
const DIST = { username: 'mirror', password: 'distribution-pw' };

function missingRegistry(): string | false {
  try {
    execFileSync('docker-registry', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'docker-registry (CNCF Distribution 2.8) is not installed';
  }
}

const skip = skipOrFail(missingRegistry());

const SERVER_ENV = {
  BERTH_AUTH_MODE: 'basic',
  BERTH_ADMIN_PASSWORD: ADMIN.password,
  BERTH_SECRETS_KEY: 'replication-test-key-0123456789',
  BERTH_JOBS_POLL_INTERVAL: '200ms',
  BERTH_JOBS_LEASE_DURATION: '2s',
  BERTH_WEBHOOKS_ALLOWED_HOSTS: '127.0.0.1',
};

function clientOf(url: string, credentials: { username: string; password: string }): RegistryClient {
  return createRegistryClient({ urls: [url], credentials });
}

/** Checks that `to` holds `image` in `repo` under `tag` with the very bytes of `from`. */
async function assertSameImage(
  from: RegistryClient,
  fromRepo: string,
  to: RegistryClient,
  toRepo: string,
  tag: string,
  image: PushedIndex,
): Promise<void> {
  const a = await from.getManifest(fromRepo, tag);
  const b = await to.getManifest(toRepo, tag);
  assert.ok(a && b, `${toRepo}:${tag} exists on both sides`);
  assert.equal(b.digest, image.index);
  assert.ok(b.body.equals(a.body), 'index bytes are identical');
  for (const child of image.children) {
    const m = await to.getManifest(toRepo, child);
    assert.ok(m, `child ${child} copied`);
    assert.equal(digestOf(m.body), child);
  }
  for (const blob of image.blobs) {
    assert.equal(await to.headBlob(toRepo, blob), await from.headBlob(fromRepo, blob), `blob ${blob}`);
  }
  // The per-platform attestation came along, by the referrers API or the cosign tag scheme.
  const child = image.children[0] as string;
  const referrers = await to.listReferrers(toRepo, child as PushedIndex['index']);
  if (referrers === null) {
    const tagged = await to.headManifest(toRepo, `${child.replace(':', '-')}.att`);
    assert.equal(tagged?.digest, image.attestation, 'the attestation is tagged by the cosign scheme');
  } else {
    assert.deepEqual(
      referrers.map((d) => d.digest),
      [image.attestation],
    );
  }
}

describe('replication between registries', { skip }, () => {
  let distribution: RunningRegistry;
  let a: RunningBerth;
  let api: AdminApi;
  let local: RegistryClient;
  let remote: RegistryClient;
  let receiver: WebhookReceiver;

  /** The data of the replication events the webhook received for execution `id`. */
  const eventsOf = (id: number): { type: string; detail: Record<string, unknown> }[] =>
    receiver.requests
      .map((r) => JSON.parse(r.body) as { type: string; data: { detail?: Record<string, unknown> } })
      .filter((e) => e.type.startsWith('io.berth.replication.') && e.data.detail?.execution === id)
      .map((e) => ({ type: e.type, detail: e.data.detail as Record<string, unknown> }));

  before(async () => {
    receiver = await startReceiver();
    distribution = await startDistribution({ htpasswd: DIST });
    a = await startBerth({ env: SERVER_ENV });
    api = adminApi(a.url, ADMIN.username, ADMIN.password);
    local = clientOf(a.url, ADMIN);
    remote = clientOf(distribution.url, DIST);
    const r = await api('POST', '/replication/registries', {
      name: 'distribution',
      url: distribution.url,
      username: DIST.username,
      password: DIST.password,
      // One task at a time: the second repository's blobs are then mounted from the first's.
      concurrency: 1,
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const hook = await api('POST', '/webhooks', {
      name: 'replication-events',
      url: `${receiver.url}/hook`,
      format: 'cloudevents',
      events: ['replication.completed', 'replication.failed'],
    });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
  });

  after(async () => {
    await a?.dispose();
    await distribution?.stop();
    await receiver?.close();
  });

  let pushed: PushedIndex;

  it('pushes a multi-platform index and its signature to Distribution, digests preserved', async () => {
    pushed = await pushIndexWithReferrer(local, 'prod/app', 'v1');
    // The same image in a second repository (mounted here, so no bytes move in Berth).
    for (const blob of pushed.blobs) assert.equal(await local.mountBlob('prod/copy', blob, 'prod/app'), true);
    for (const child of pushed.children) {
      const m = await local.getManifest('prod/app', child);
      await local.putManifest('prod/copy', child, m!.mediaType, m!.body);
    }
    await local.putManifest('prod/copy', 'v1', 'application/vnd.oci.image.index.v1+json', pushed.indexBytes);
    for (const referrer of [pushed.referrer, pushed.attestation]) {
      const m = await local.getManifest('prod/app', referrer);
      await local.putManifest('prod/copy', referrer, m!.mediaType, m!.body);
    }
    const policy = await api('POST', '/replication/policies', {
      name: 'to-distribution',
      registry: 'distribution',
      direction: 'push',
      repositories: ['prod/**'],
      tags: ['v*'],
      rewrite: { addPrefix: 'mirror' },
    });
    assert.equal(policy.status, 201, JSON.stringify(policy.body));
    const run = await api<{ id: number }>('POST', '/replication/policies/to-distribution/run');
    assert.equal(run.status, 202);
    const done = await waitForExecution(api, run.body.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.equal(done.progress.total, 2);
    const tasks = await api<{ tasks: { items: { sourceRepository: string; bytes: number }[] } }>(
      'GET',
      `/replication/executions/${run.body.id}`,
    );
    const bytes = Object.fromEntries(tasks.body.tasks.items.map((t) => [t.sourceRepository, t.bytes]));
    assert.ok((bytes['prod/app'] ?? 0) > 0, 'the first repository uploads the blobs');
    assert.equal(bytes['prod/copy'], 0, 'the second mounts them from the first');
    assert.equal(done.progress.bytes, bytes['prod/app']);
    await eventually(async () => eventsOf(run.body.id).length > 0, 'the replication.completed webhook');
    assert.deepEqual(eventsOf(run.body.id), [
      {
        type: 'io.berth.replication.completed',
        detail: {
          execution: run.body.id,
          policy: 'to-distribution',
          trigger: 'manual',
          tasks: 2,
          succeeded: 2,
          failed: 0,
          bytes: done.progress.bytes,
        },
      },
    ]);

    await assertSameImage(local, 'prod/app', remote, 'mirror/prod/app', 'v1', pushed);
    await assertSameImage(local, 'prod/copy', remote, 'mirror/prod/copy', 'v1', pushed);
    // Distribution 2.8 has no referrers API: the signature travels under the cosign tag of its subject.
    assert.equal(await remote.listReferrers('mirror/prod/app', pushed.index), null);
    const sig = await remote.getManifest('mirror/prod/app', `${pushed.index.replace(':', '-')}.sig`);
    assert.ok(sig, 'the signature is tagged by the cosign scheme');
    assert.equal(sig.digest, pushed.referrer);
    assert.ok(sig.body.equals(pushed.referrerBytes));

    // A second run finds everything there: nothing uploaded again.
    const again = await api<{ id: number }>('POST', '/replication/policies/to-distribution/run');
    const second = await waitForExecution(api, again.body.id);
    assert.equal(second.state, 'succeeded');
    assert.equal(second.progress.bytes, 0);
  });

  it('pulls from Distribution into Berth: the signature becomes a referrer again', async () => {
    const policy = await api('POST', '/replication/policies', {
      name: 'from-distribution',
      registry: 'distribution',
      direction: 'pull',
      repositories: ['mirror/prod/app'],
      rewrite: { stripPrefix: 'mirror', addPrefix: 'back' },
    });
    assert.equal(policy.status, 201, JSON.stringify(policy.body));
    const run = await api<{ id: number }>('POST', '/replication/policies/from-distribution/run');
    const done = await waitForExecution(api, run.body.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    // The cosign tag is not a task of its own: it comes with its subject.
    assert.equal(done.progress.total, 1);

    await assertSameImage(remote, 'mirror/prod/app', local, 'back/prod/app', 'v1', pushed);
    const referrers = await local.listReferrers('back/prod/app', pushed.index);
    assert.deepEqual(
      referrers?.map((d) => d.digest),
      [pushed.referrer],
    );
    const sig = await local.getManifest('back/prod/app', pushed.referrer);
    assert.ok(sig?.body.equals(pushed.referrerBytes));
  });

  it('replicates pushes and tag deletions to another Berth as they happen', async () => {
    const b = await startBerth({ env: SERVER_ENV });
    try {
      const other = clientOf(b.url, ADMIN);
      assert.equal(
        (
          await api('POST', '/replication/registries', {
            name: 'berth-b',
            url: b.url,
            username: ADMIN.username,
            password: ADMIN.password,
          })
        ).status,
        201,
      );
      const policy = await api('POST', '/replication/policies', {
        name: 'to-b',
        registry: 'berth-b',
        direction: 'push',
        repositories: ['events/**'],
        trigger: 'event',
        replicateDeletions: true,
      });
      assert.equal(policy.status, 201, JSON.stringify(policy.body));

      const image = await pushIndexWithReferrer(local, 'events/app', 'v1');
      await local.putManifest(
        'events/app',
        'v2',
        'application/vnd.oci.image.index.v1+json',
        image.indexBytes,
      );
      await eventually(
        async () =>
          (await other.headManifest('events/app', 'v2'))?.digest === image.index &&
          ((await other.listReferrers('events/app', image.index)) ?? []).length === 1,
        'the push and its referrer to reach Berth B',
      );
      await assertSameImage(local, 'events/app', other, 'events/app', 'v1', image);
      const referrers = await other.listReferrers('events/app', image.index);
      assert.deepEqual(
        referrers?.map((d) => d.digest),
        [image.referrer],
      );

      assert.equal(await local.deleteManifest('events/app', 'v1'), true);
      await eventually(
        async () => (await other.headManifest('events/app', 'v1')) === null,
        'the tag deletion to reach Berth B',
      );
      assert.equal((await other.headManifest('events/app', 'v2'))?.digest, image.index, 'v2 stays');

      const executions = await api<{ items: { trigger: string; state: string }[] }>(
        'GET',
        '/replication/executions?policy=to-b',
      );
      assert.ok(executions.body.items.length >= 2);
      assert.ok(executions.body.items.every((e) => e.trigger === 'event'));
    } finally {
      await b.dispose();
    }
  });

  it('replicates a tag deletion to Distribution by digest only when no other tag keeps the manifest', async () => {
    const policy = await api('POST', '/replication/policies', {
      name: 'deletions-to-distribution',
      registry: 'distribution',
      direction: 'push',
      repositories: ['del/**'],
      trigger: 'event',
      replicateDeletions: true,
    });
    assert.equal(policy.status, 201, JSON.stringify(policy.body));
    const kept = await pushIndexWithReferrer(local, 'del/app', 'a');
    await local.putManifest('del/app', 'b', 'application/vnd.oci.image.index.v1+json', kept.indexBytes);
    const gone = await pushIndexWithReferrer(local, 'del/app', 'c');
    await eventually(
      async () =>
        (await remote.headManifest('del/app', 'b')) !== null &&
        (await remote.headManifest('del/app', 'c')) !== null,
      'the pushes to reach Distribution',
    );

    await local.deleteManifest('del/app', 'c');
    await local.deleteManifest('del/app', 'a');
    await eventually(
      async () => (await remote.headManifest('del/app', gone.index)) === null,
      'the untagged manifest to be deleted on Distribution',
    );
    // `a` is gone locally but `b` still names its manifest: deleting it by digest would take `b` too.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal((await remote.headManifest('del/app', 'b'))?.digest, kept.index);
  });

  it('retries only the failed tasks of a failed execution', async () => {
    const bad = await api('POST', '/replication/registries', {
      name: 'wrong-password',
      url: distribution.url,
      username: DIST.username,
      password: 'not-the-password',
    });
    assert.equal(bad.status, 201);
    await api('POST', '/replication/policies', {
      name: 'retried',
      registry: 'wrong-password',
      repositories: ['prod/app'],
      rewrite: { addPrefix: 'retried' },
    });
    const run = await api<{ id: number }>('POST', '/replication/policies/retried/run');
    const failed = await waitForExecution(api, run.body.id);
    assert.equal(failed.state, 'failed', JSON.stringify(failed));
    assert.equal(failed.progress.failed, 1);
    assert.match(failed.error ?? '', /1 of 1 task\(s\) failed/);
    await eventually(async () => eventsOf(run.body.id).length > 0, 'the replication.failed webhook');
    assert.equal(eventsOf(run.body.id)[0]?.type, 'io.berth.replication.failed');

    const fixed = await api('PATCH', '/replication/registries/wrong-password', { password: DIST.password });
    assert.equal(fixed.status, 200);
    const retried = await api('POST', `/replication/executions/${run.body.id}/retry`);
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    const done = await waitForExecution(api, run.body.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    await assertSameImage(local, 'prod/app', remote, 'retried/prod/app', 'v1', pushed);
  });

  it('finishes an execution interrupted by SIGKILL after a restart on the same data directory', async () => {
    const image = await pushIndexWithReferrer(local, 'big/app', 'v1', { layerSize: 384 * 1024 });
    const policy = await api('POST', '/replication/policies', {
      name: 'throttled',
      registry: 'distribution',
      direction: 'push',
      repositories: ['big/app'],
      rewrite: { addPrefix: 'crash' },
      bandwidthLimit: 256 * 1024,
    });
    assert.equal(policy.status, 201, JSON.stringify(policy.body));
    const run = await api<{ id: number }>('POST', '/replication/policies/throttled/run');
    const id = run.body.id;
    // Mid-way: some bytes are copied (about 1.5 MiB in all, at 256 KiB/s).
    await eventually(async () => {
      const e = await api<{ progress: { bytes: number }; state: string }>(
        'GET',
        `/replication/executions/${id}`,
      );
      return e.body.state === 'running' && e.body.progress.bytes > 128 * 1024;
    }, 'the execution to be under way');
    await a.kill();
    assert.equal(await remote.headManifest('crash/big/app', 'v1'), null, 'killed before the end');

    a = await startBerth({ env: SERVER_ENV, dataDir: a.dataDir });
    api = adminApi(a.url, ADMIN.username, ADMIN.password);
    local = clientOf(a.url, ADMIN);
    const done = await waitForExecution(api, id, 90_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    // The task was started before the kill and again after the restart.
    const detail = await api<{ tasks: { items: { attempts: number; state: string }[] } }>(
      'GET',
      `/replication/executions/${id}`,
    );
    assert.deepEqual(
      detail.body.tasks.items.map((t) => [t.state, t.attempts]),
      [['succeeded', 2]],
    );
    await assertSameImage(local, 'big/app', remote, 'crash/big/app', 'v1', image);
    const sig = await remote.getManifest('crash/big/app', `${image.index.replace(':', '-')}.sig`);
    assert.equal(sig?.digest, image.referrer);
  });
});

const pgSkip = skip || (await postgresSkipReason());

describe('replication on two instances sharing PostgreSQL', { skip: pgSkip }, () => {
  const schema = `berth_repl_${randomBytes(4).toString('hex')}`;
  let distribution: RunningRegistry;
  let dataDir: string;
  const instances: RunningBerth[] = [];

  before(async () => {
    distribution = await startDistribution();
    // Both instances share the blob directory and the database: everything but the process.
    dataDir = await mkdtemp(path.join(tmpdir(), 'berth-repl-mi-'));
    const env = {
      ...SERVER_ENV,
      BERTH_LOG_ACCESS_LOG: 'false',
      BERTH_METADATA_DRIVER: 'postgres',
      BERTH_METADATA_POSTGRES_URL: POSTGRES_URL,
      BERTH_METADATA_POSTGRES_SCHEMA: schema,
    };
    instances.push(await startBerth({ dataDir, env }));
    instances.push(await startBerth({ dataDir, env }));
  });

  after(async () => {
    for (const i of instances) await i.stop();
    await distribution?.stop();
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query(`drop schema if exists "${schema}" cascade`).finally(() => admin.end());
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('runs each execution on one instance, each task once', async () => {
    const [first] = instances as [RunningBerth, RunningBerth];
    const api = adminApi(first.url, ADMIN.username, ADMIN.password);
    const local = clientOf(first.url, ADMIN);
    const images: PushedIndex[] = [];
    for (let i = 0; i < 3; i++) images.push(await pushIndexWithReferrer(local, `shared/app${i}`, 'v1'));
    assert.equal(
      (await api('POST', '/replication/registries', { name: 'dist', url: distribution.url, concurrency: 2 }))
        .status,
      201,
    );
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      assert.equal(
        (
          await api('POST', '/replication/policies', {
            name: `p${i}`,
            registry: 'dist',
            repositories: [`shared/app${i}`],
          })
        ).status,
        201,
      );
      ids.push((await api<{ id: number }>('POST', `/replication/policies/p${i}/run`)).body.id);
    }
    const remote = createRegistryClient({ urls: [distribution.url] });
    for (const [i, id] of ids.entries()) {
      const done = await waitForExecution(api, id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done));
      const detail = await api<{ tasks: { items: { attempts: number }[] } }>(
        'GET',
        `/replication/executions/${id}`,
      );
      assert.deepEqual(
        detail.body.tasks.items.map((t) => t.attempts),
        [1],
        'no task ran twice',
      );
      assert.equal((await remote.headManifest(`shared/app${i}`, 'v1'))?.digest, images[i]?.index);
    }
    const finished = instances
      .map(
        (i) =>
          i
            .output()
            .split('\n')
            .filter((l) => l.includes('replication execution finished')).length,
      )
      .reduce((a, b) => a + b, 0);
    assert.equal(finished, 3, 'each execution finished once, on one instance');
  });
});
