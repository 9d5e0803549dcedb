/**
 * Garbage collection through the registry, on SQLite and on PostgreSQL: what is collected (untagged manifests,
 * index children, referrers of a deleted subject, unreferenced blobs after their grace period) and what is kept
 * (shared layers, blobs of other repositories and namespaces, held blobs), the interleavings with writers that
 * docs/gc.md argues about, dry runs, housekeeping, and the admin API.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { bootstrapAdmin } from '../../src/auth/bootstrap.ts';
import {
  createTestRegistry,
  descriptorOf,
  indexManifest,
  json,
  manifestBytes,
  OCI_INDEX,
  OCI_MANIFEST,
  randomBlob,
  sha256,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';
import { conforms } from '../helpers/openapi.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import type { GcRunRecord } from '../../src/metadata/gc-store.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { blobKey } from '../../src/storage/paths.ts';

const pgSkip = await postgresSkipReason();

interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  readonly skip: string | false;
  /** Config overrides putting the metadata on this database (a new schema on PostgreSQL). */
  overrides(): Promise<{ overrides: Record<string, unknown>; cleanup: () => Promise<void> }>;
}

const DIALECTS: Dialect[] = [
  { name: 'sqlite', skip: false, overrides: async () => ({ overrides: {}, cleanup: async () => undefined }) },
  {
    name: 'postgres',
    skip: pgSkip,
    overrides: async () => {
      const schema = `berth_test_${randomBytes(6).toString('hex')}`;
      return {
        overrides: {
          'metadata.driver': 'postgres',
          'metadata.postgres.url': POSTGRES_URL,
          'metadata.postgres.schema': schema,
        },
        cleanup: async () => {
          const admin = new pg.Client({ connectionString: POSTGRES_URL });
          await admin.connect();
          await admin.query(`drop schema if exists "${schema}" cascade`).finally(() => admin.end());
        },
      };
    },
  },
];

/** A registry whose collector reviews content at once (no grace periods). */
async function registryOn(
  dialect: Dialect,
  extra: Record<string, unknown> = {},
): Promise<{ reg: TestRegistry; dispose: () => Promise<void> }> {
  const { overrides, cleanup } = await dialect.overrides();
  const reg = await createTestRegistry({
    'gc.blobGracePeriod': 0,
    'gc.manifestGracePeriod': 0,
    ...overrides,
    ...extra,
  });
  return {
    reg,
    dispose: async () => {
      await reg.dispose();
      await cleanup();
    },
  };
}

async function collect(reg: TestRegistry, dryRun = false): Promise<GcRunRecord> {
  const run = await reg.services.gc.runHere({ dryRun, trigger: 'cli', requestedBy: null });
  assert.equal(run.state, 'succeeded', `gc run failed: ${run.error}`);
  return run;
}

async function inStorage(reg: TestRegistry, digest: string): Promise<boolean> {
  return (await reg.services.storage.stat(blobKey(digest))) !== null;
}

async function status(reg: TestRegistry, method: 'GET' | 'HEAD', url: string): Promise<number> {
  return (await reg.inject({ method, url, headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } })).statusCode;
}

/** Every blob of `image` pulls with its bytes; the manifest pulls by digest. */
async function assertPullable(
  reg: TestRegistry,
  repo: string,
  image: { digest: string; config: { digest: string }; layers: { digest: string }[] },
): Promise<void> {
  assert.equal(await status(reg, 'GET', `/v2/${repo}/manifests/${image.digest}`), 200);
  for (const d of [image.config.digest, ...image.layers.map((l) => l.digest)]) {
    const res = await reg.inject({ method: 'GET', url: `/v2/${repo}/blobs/${d}` });
    assert.equal(res.statusCode, 200, `blob ${d} of ${repo}`);
    assert.equal(sha256(res.rawPayload), d);
  }
}

for (const dialect of DIALECTS) {
  describe(`garbage collection on ${dialect.name}`, { skip: dialect.skip }, () => {
    let reg: TestRegistry;
    let dispose: () => Promise<void>;
    before(async () => {
      ({ reg, dispose } = await registryOn(dialect));
    });
    after(async () => dispose?.());

    it('untag (202) leaves the manifest by digest until a collection deletes it and its own blobs', async () => {
      const img = await reg.pushImage('untag/app', 'v1', { layers: 2 });
      const other = await reg.pushImage('untag/app', 'v2');
      const del = await reg.inject({ method: 'DELETE', url: '/v2/untag/app/manifests/v1' });
      assert.equal(del.statusCode, 202);
      assert.equal(await status(reg, 'GET', '/v2/untag/app/manifests/v1'), 404);
      assert.equal(await status(reg, 'GET', `/v2/untag/app/manifests/${img.digest}`), 200);

      const run = await collect(reg);
      assert.ok(run.progress.manifestsDeleted >= 1);
      assert.ok(run.progress.blobsDeleted >= 3);
      assert.equal(await status(reg, 'GET', `/v2/untag/app/manifests/${img.digest}`), 404);
      for (const d of [img.config.digest, ...img.layers.map((l) => l.digest)]) {
        assert.equal(await inStorage(reg, d), false, `bytes of ${d} are gone`);
        assert.equal((await reg.inject({ method: 'HEAD', url: `/v2/untag/app/blobs/${d}` })).statusCode, 404);
      }
      await assertPullable(reg, 'untag/app', other);
    });

    it('delete by digest removes the manifest and its tags; its blobs go at the next collection', async () => {
      const img = await reg.pushImage('bydigest/app', 'v1');
      const del = await reg.inject({ method: 'DELETE', url: `/v2/bydigest/app/manifests/${img.digest}` });
      assert.equal(del.statusCode, 202);
      assert.equal(await status(reg, 'GET', '/v2/bydigest/app/manifests/v1'), 404);
      assert.equal(await inStorage(reg, img.layers[0]!.digest), true);
      await collect(reg);
      assert.equal(await inStorage(reg, img.layers[0]!.digest), false);
    });

    it('keeps layers shared with a tagged image, in the same repository and across repositories', async () => {
      const base = await reg.pushImage('shared/base', 'v1');
      // The same layer in another repository of the namespace and in another namespace, by mount.
      for (const repo of ['shared/app', 'othernamespace/app']) {
        for (const d of [base.config.digest, base.layers[0]!.digest]) {
          const m = await reg.inject({
            method: 'POST',
            url: `/v2/${repo}/blobs/uploads/?mount=${d}&from=shared/base`,
          });
          assert.equal(m.statusCode, 201);
        }
        const res = await reg.putManifest(repo, 'v1', base.bytes);
        assert.equal(res.statusCode, 201);
      }
      // Deleted from one repository: the others still reference the blobs.
      await reg.inject({ method: 'DELETE', url: `/v2/shared/base/manifests/${base.digest}` });
      await collect(reg);
      await assertPullable(reg, 'shared/app', base);
      await assertPullable(reg, 'othernamespace/app', base);
      // Deleted everywhere: gone.
      await reg.inject({ method: 'DELETE', url: `/v2/shared/app/manifests/${base.digest}` });
      await collect(reg);
      await assertPullable(reg, 'othernamespace/app', base);
      await reg.inject({ method: 'DELETE', url: `/v2/othernamespace/app/manifests/${base.digest}` });
      await collect(reg);
      assert.equal(await inStorage(reg, base.layers[0]!.digest), false);
    });

    it('follows index children: kept under a tagged index, collected with it', async () => {
      const a = await reg.pushImage('index/app', null);
      const b = await reg.pushImage('index/app', null);
      const index = manifestBytes(indexManifest([a.descriptor, b.descriptor]));
      assert.equal((await reg.putManifest('index/app', 'multi', index, OCI_INDEX)).statusCode, 201);
      await collect(reg);
      await assertPullable(reg, 'index/app', a);
      await assertPullable(reg, 'index/app', b);

      await reg.inject({ method: 'DELETE', url: '/v2/index/app/manifests/multi' });
      const run = await collect(reg);
      assert.ok(run.progress.manifestsDeleted >= 3, 'index and both children');
      assert.equal(await status(reg, 'GET', `/v2/index/app/manifests/${a.digest}`), 404);
      assert.equal(await inStorage(reg, b.layers[0]!.digest), false);
    });

    it('keeps referrers of a present subject, collects them once the subject is gone', async () => {
      const subject = await reg.pushImage('refs/app', 'v1');
      const sig = await reg.pushImage('refs/app', null, {
        subject: subject.descriptor,
        artifactType: 'application/vnd.example.signature',
        emptyConfig: true,
      });
      await collect(reg);
      assert.equal(await status(reg, 'GET', `/v2/refs/app/manifests/${sig.digest}`), 200);
      await reg.inject({ method: 'DELETE', url: `/v2/refs/app/manifests/${subject.digest}` });
      await collect(reg);
      assert.equal(await status(reg, 'GET', `/v2/refs/app/manifests/${sig.digest}`), 404);
      assert.equal(await inStorage(reg, sig.layers[0]!.digest), false);
    });

    it('a dry run reports what the collection then deletes, and changes nothing', async () => {
      const a = await reg.pushImage('dry/app', 'v1', { layers: 3 });
      const b = await reg.pushImage('dry/app', null);
      const index = manifestBytes(indexManifest([b.descriptor]));
      await reg.putManifest('dry/app', 'idx', index, OCI_INDEX);
      await collect(reg);
      await reg.inject({ method: 'DELETE', url: '/v2/dry/app/manifests/v1' });
      await reg.inject({ method: 'DELETE', url: '/v2/dry/app/manifests/idx' });
      const dry = await collect(reg, true);
      assert.equal(dry.dryRun, true);
      await assertPullable(reg, 'dry/app', a);
      const real = await collect(reg);
      assert.equal(dry.progress.manifestsDeleted, real.progress.manifestsDeleted);
      assert.equal(dry.progress.blobsDeleted, real.progress.blobsDeleted);
      assert.equal(dry.progress.bytesFreed, real.progress.bytesFreed);
      assert.equal(real.progress.manifestsDeleted, 3);
    });

    it('records runs with their counters; the history lists them newest first', async () => {
      const runs = await reg.services.gc.list(100);
      assert.ok(runs.length >= 2);
      assert.ok(runs[0]!.id > runs[1]!.id);
      assert.ok(runs.every((r) => r.state === 'succeeded' && r.finishedAt !== null));
    });
  });

  describe(`garbage collection races on ${dialect.name} (docs/gc.md)`, { skip: dialect.skip }, () => {
    let reg: TestRegistry;
    let dispose: () => Promise<void>;
    before(async () => {
      ({ reg, dispose } = await registryOn(dialect));
    });
    after(async () => dispose?.());

    it('a blob held by a writer (between its commit and its link) is not deleted', async () => {
      const bytes = randomBlob(64);
      const digest = sha256(bytes) as Digest;
      const holder = randomUUID();
      assert.equal(await reg.services.metadata.holdBlob(digest, bytes.length, holder, 60_000), true);
      await reg.services.storage.put(blobKey(digest), bytes);
      await collect(reg);
      assert.equal(await inStorage(reg, digest), true, 'held bytes stay');
      // The link ends the hold; unreferenced and past its (zero) grace period, the blob then goes.
      await reg.services.metadata.linkBlob('race/app', digest, bytes.length, undefined, { holder });
      await collect(reg);
      assert.equal(await inStorage(reg, digest), false);
    });

    it('a blob marked as deleting is absent to HEAD, GET, mount and manifest pushes, and holds wait', async () => {
      const gc = (reg.services.metadata as KyselyMetadataStore).gcStore();
      const fresh = randomBlob(32);
      const digest = await reg.pushBlob('race/mark', fresh);
      const marked = await gc.markBlobsDeleting([digest as Digest], Date.now() + 1);
      assert.deepEqual(
        marked.map((b) => b.digest),
        [digest],
      );
      assert.equal(
        (await reg.inject({ method: 'HEAD', url: `/v2/race/mark/blobs/${digest}` })).statusCode,
        404,
      );
      assert.equal(
        (await reg.inject({ method: 'GET', url: `/v2/race/mark/blobs/${digest}` })).statusCode,
        404,
      );
      const mount = await reg.inject({
        method: 'POST',
        url: `/v2/race/other/blobs/uploads/?mount=${digest}&from=race/mark`,
      });
      assert.equal(mount.statusCode, 202, 'no mount: a normal upload session instead');
      const manifest = manifestBytes({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptorOf(fresh, 'application/vnd.oci.image.config.v1+json'),
        layers: [],
      });
      const put = await reg.putManifest('race/mark', 'x', manifest);
      assert.equal(put.statusCode, 400);
      assert.equal(json<{ errors: { code: string }[] }>(put).errors[0]?.code, 'MANIFEST_BLOB_UNKNOWN');
      assert.equal(
        await reg.services.metadata.holdBlob(digest as Digest, fresh.length, randomUUID(), 1000),
        false,
      );

      // A push of the same digest while the deletion is in progress waits for it, then stores the bytes anew.
      const push = reg.inject({
        method: 'POST',
        url: `/v2/race/mark/blobs/uploads/?digest=${digest}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: fresh,
      });
      await new Promise((r) => setTimeout(r, 200));
      await reg.services.storage.delete(blobKey(digest));
      await gc.forgetBlobs([digest as Digest]);
      assert.equal((await push).statusCode, 201);
      const res = await reg.inject({ method: 'GET', url: `/v2/race/mark/blobs/${digest}` });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.rawPayload, fresh);
      assert.equal((await reg.putManifest('race/mark', 'x', manifest)).statusCode, 201);
    });

    it('a manifest pushed referencing a blob under review keeps the blob', async () => {
      const bytes = randomBlob(48);
      const digest = await reg.pushBlob('race/ref', bytes); // due at once (zero grace)
      const manifest = manifestBytes({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptorOf(bytes, 'application/vnd.oci.image.config.v1+json'),
        layers: [],
      });
      assert.equal((await reg.putManifest('race/ref', 'v1', manifest)).statusCode, 201);
      await collect(reg);
      assert.equal(await inStorage(reg, digest), true);
      assert.equal(
        (await reg.inject({ method: 'GET', url: `/v2/race/ref/blobs/${digest}` })).statusCode,
        200,
      );
    });

    it('a tag moved back to a manifest under review keeps it', async () => {
      const a = await reg.pushImage('race/tag', 'latest');
      await reg.pushImage('race/tag', 'latest'); // a is untagged: queued
      assert.equal((await reg.putManifest('race/tag', 'latest', a.bytes)).statusCode, 201);
      await collect(reg);
      await assertPullable(reg, 'race/tag', a);
    });

    it('a blob re-pushed after its manifest went is kept when a manifest arrives before the next run', async () => {
      const img = await reg.pushImage('race/repush', 'v1');
      await reg.inject({ method: 'DELETE', url: `/v2/race/repush/manifests/${img.digest}` });
      // The layer's review is due now; a client pushes the image again before the collector gets to it.
      await reg.pushBlob('race/repush', img.layerBytes[0]!);
      assert.equal((await reg.putManifest('race/repush', 'v1', img.bytes)).statusCode, 201);
      await collect(reg);
      await assertPullable(reg, 'race/repush', img);
    });
  });

  describe(`garbage collection settings and housekeeping on ${dialect.name}`, { skip: dialect.skip }, () => {
    it('with a grace period, a fresh unreferenced blob and an untagged manifest stay', async () => {
      const { reg, dispose } = await registryOn(dialect, {
        'gc.blobGracePeriod': '1h',
        'gc.manifestGracePeriod': '1h',
      });
      try {
        const digest = await reg.pushBlob('grace/app', randomBlob(40));
        const img = await reg.pushImage('grace/app', null);
        await collect(reg);
        assert.equal(await inStorage(reg, digest), true);
        assert.equal(await status(reg, 'GET', `/v2/grace/app/manifests/${img.digest}`), 200);
      } finally {
        await dispose();
      }
    });

    it('orphanedReferrers: keep keeps a referrer whose subject is gone', async () => {
      const { reg, dispose } = await registryOn(dialect, { 'gc.orphanedReferrers': 'keep' });
      try {
        const subject = await reg.pushImage('keep/app', 'v1');
        const sig = await reg.pushImage('keep/app', null, {
          subject: subject.descriptor,
          artifactType: 'application/vnd.example.sbom',
          emptyConfig: true,
        });
        await reg.inject({ method: 'DELETE', url: `/v2/keep/app/manifests/${subject.digest}` });
        await collect(reg);
        assert.equal(await status(reg, 'GET', `/v2/keep/app/manifests/${sig.digest}`), 200);
      } finally {
        await dispose();
      }
    });

    it('removes blob files no metadata knows (a crash between bytes and metadata)', async () => {
      const { reg, dispose } = await registryOn(dialect);
      try {
        const bytes = randomBlob(80);
        const digest = sha256(bytes);
        await reg.services.storage.put(blobKey(digest), bytes);
        const kept = await reg.pushImage('orphan/app', 'v1');
        const run = await collect(reg);
        assert.equal(run.progress.orphansDeleted, 1);
        assert.equal(await inStorage(reg, digest), false);
        await assertPullable(reg, 'orphan/app', kept);
      } finally {
        await dispose();
      }
    });

    it('purges audit events past audit.retention and expired refresh tokens', async () => {
      const { reg, dispose } = await registryOn(dialect, { 'audit.retention': '1d' });
      try {
        const store = reg.services.auth.store;
        const event = {
          actor: null,
          actorKind: 'system' as const,
          target: null,
          sourceAddr: null,
          success: true,
          detail: null,
        };
        await store.appendAudit({
          ...event,
          action: 'test.old',
          time: new Date(Date.now() - 3 * 86_400_000),
        });
        await store.appendAudit({ ...event, action: 'test.new', time: new Date() });
        const run = await collect(reg);
        assert.ok((run.progress.purged['auditEvents'] ?? 0) >= 1);
        const left = await store.queryAudit({ limit: 100 });
        const actions = left.items.map((e) => e.action);
        assert.ok(actions.includes('test.new'));
        assert.ok(!actions.includes('test.old'));
      } finally {
        await dispose();
      }
    });
  });
}

describe('garbage collection admin API', () => {
  const ADMIN = { user: 'admin', password: 'admin-password' };
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({
      'auth.mode': 'basic',
      'gc.blobGracePeriod': 0,
      'gc.manifestGracePeriod': 0,
    });
    assert.equal(await bootstrapAdmin(reg.services.auth.store, ADMIN.user, ADMIN.password), 'created');
  });
  after(async () => reg?.dispose());

  async function call(method: 'GET' | 'POST', url: string, body?: unknown, auth = true): Promise<Response> {
    const headers: Record<string, string> = {};
    if (auth)
      headers.authorization = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await reg.inject({
      method,
      url: `/api/v1${url}`,
      headers,
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    conforms(method, `/api/v1${url}`, res);
    return res;
  }

  it('POST /gc queues a run the job runner executes; GET shows its status, and the history lists it', async () => {
    // An unreferenced blob: garbage at once with no grace period.
    const bytes = randomBlob(50);
    const digest = sha256(bytes) as Digest;
    await reg.services.storage.put(blobKey(digest), bytes);
    await reg.services.metadata.linkBlob('api/app', digest, bytes.length);

    assert.equal((await call('POST', '/gc', {}, false)).statusCode, 401);
    reg.services.gc.register('off');
    reg.services.jobs.start();
    const finished = async (id: number): Promise<{ state: string; progress: { blobsDeleted: number } }> => {
      for (let i = 0; i < 400; i++) {
        const got = await call('GET', `/gc/${id}`);
        assert.equal(got.statusCode, 200);
        const run = json<{ state: string; progress: { blobsDeleted: number } }>(got);
        if (run.state === 'succeeded' || run.state === 'failed') return run;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.fail(`run ${id} did not finish`);
    };
    const dry = await call('POST', '/gc', { dryRun: true });
    assert.equal(dry.statusCode, 202, dry.body);
    const dryRun = await finished(json<{ id: number }>(dry).id);
    assert.equal(dryRun.state, 'succeeded');
    assert.equal(dryRun.progress.blobsDeleted, 1);
    assert.equal(await inStorage(reg, digest), true);

    const res = await call('POST', '/gc', { dryRun: false });
    assert.equal(res.statusCode, 202, res.body);
    const queued = json<{ id: number; state: string }>(res);
    assert.equal(queued.state, 'queued');
    const run = await finished(queued.id);
    assert.equal(run.state, 'succeeded');
    assert.equal(run.progress.blobsDeleted, 1);
    assert.equal(await inStorage(reg, digest), false);

    const list = json<{ items: { id: number }[] }>(await call('GET', '/gc'));
    assert.ok(list.items.some((r) => r.id === queued.id));
    assert.equal((await call('GET', '/gc/999999')).statusCode, 404);
    assert.equal((await call('POST', '/gc', { dryRun: 'yes' })).statusCode, 400);
    const audit = await reg.services.auth.store.queryAudit({ limit: 20, action: 'gc.start' });
    assert.equal(audit.items.length, 2);
  });
});
