/**
 * Garbage collection under load, on SQLite and on PostgreSQL: for GC_STRESS_SECONDS (60 by default), four writers
 * push images that share layers, retag, untag, delete and mount, while a collection runs every second with no grace
 * periods, so every blob and manifest is due for review the moment anything lets go of it. Writers may see
 * MANIFEST_BLOB_UNKNOWN (a blob they uploaded was collected before their manifest arrived: that is what a zero grace
 * period means) or 429 (a digest being deleted); they push again. Afterwards every manifest reachable from a tag
 * pulls completely with verified digests, and after a final collection no blob bytes remain in storage that no
 * manifest references.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  createTestRegistry,
  descriptorOf,
  imageManifest,
  indexManifest,
  json,
  manifestBytes,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER,
  OCI_MANIFEST,
  sha256,
  type Descriptor,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import { GcBusyError } from '../../src/gc/collector.ts';
import { BLOBS_PREFIX } from '../../src/storage/paths.ts';
import { digestOfKey } from '../../src/gc/collector.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';

const SECONDS = Number(process.env['GC_STRESS_SECONDS'] ?? 60);
const WRITERS = 4;
const REPOS = ['stress/a', 'stress/b', 'other/c'];
const TAGS = ['t0', 't1', 't2', 't3'];

const pgSkip = await postgresSkipReason();

/** Layers every writer draws from: images share them within and across repositories and namespaces. */
const SHARED = Array.from({ length: 8 }, () => randomBytes(256));

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T;
}

interface Stats {
  pushes: number;
  retries: number;
  untags: number;
  deletes: number;
  mounts: number;
  indexes: number;
  collections: number;
}

async function uploadBlob(reg: TestRegistry, repo: string, bytes: Buffer): Promise<'ok' | 'retry'> {
  const res = await reg.inject({
    method: 'POST',
    url: `/v2/${repo}/blobs/uploads/?digest=${sha256(bytes)}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: bytes,
  });
  if (res.statusCode === 201) return 'ok';
  if (res.statusCode === 429) return 'retry';
  throw new Error(`blob upload: ${res.statusCode} ${res.body}`);
}

function errorCode(res: Response): string | undefined {
  try {
    return json<{ errors?: { code: string }[] }>(res).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/** Pushes an image (random config, two shared layers, one own layer); null when a race made it fail (retry). */
async function pushImage(reg: TestRegistry, repo: string, tag: string | null): Promise<Descriptor | null> {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', n: randomBytes(8).toString('hex') }),
  );
  const layers = [pick(SHARED), pick(SHARED), randomBytes(200)];
  for (const bytes of [config, ...layers]) if ((await uploadBlob(reg, repo, bytes)) === 'retry') return null;
  const bytes = manifestBytes(
    imageManifest({
      mediaType: OCI_MANIFEST,
      config: descriptorOf(config, OCI_CONFIG),
      layers: layers.map((l) => descriptorOf(l, OCI_LAYER)),
    }),
  );
  const res = await reg.putManifest(repo, tag ?? sha256(bytes), bytes);
  if (res.statusCode === 201) return descriptorOf(bytes, OCI_MANIFEST);
  if (res.statusCode === 400 && errorCode(res) === 'MANIFEST_BLOB_UNKNOWN') return null;
  throw new Error(`manifest push: ${res.statusCode} ${res.body}`);
}

async function writer(reg: TestRegistry, until: number, stats: Stats): Promise<void> {
  while (Date.now() < until) {
    const repo = pick(REPOS);
    const roll = Math.random();
    if (roll < 0.45) {
      const pushed = await pushImage(reg, repo, pick(TAGS));
      if (pushed) stats.pushes++;
      else stats.retries++;
    } else if (roll < 0.55) {
      // An index of two untagged images pushed by digest just before it.
      const a = await pushImage(reg, repo, null);
      const b = a && (await pushImage(reg, repo, null));
      if (!a || !b) {
        stats.retries++;
        continue;
      }
      const res = await reg.putManifest(repo, pick(TAGS), manifestBytes(indexManifest([a, b])), OCI_INDEX);
      if (res.statusCode === 201) stats.indexes++;
      else if (res.statusCode === 400 && errorCode(res) === 'MANIFEST_BLOB_UNKNOWN') stats.retries++;
      else throw new Error(`index push: ${res.statusCode} ${res.body}`);
    } else if (roll < 0.7) {
      const res = await reg.inject({ method: 'DELETE', url: `/v2/${repo}/manifests/${pick(TAGS)}` });
      if (res.statusCode === 202) stats.untags++;
      else assert.equal(res.statusCode, 404, res.body);
    } else if (roll < 0.8) {
      // Retag: the manifest of one tag under another (or delete it by digest).
      const got = await reg.inject({
        method: 'GET',
        url: `/v2/${repo}/manifests/${pick(TAGS)}`,
        headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` },
      });
      if (got.statusCode !== 200) continue;
      const digest = got.headers['docker-content-digest'] as string;
      if (Math.random() < 0.5) {
        const res = await reg.putManifest(
          repo,
          pick(TAGS),
          got.rawPayload,
          got.headers['content-type'] as string,
        );
        // The manifest (or one of its children) may have been collected since the GET.
        assert.ok(res.statusCode === 201 || res.statusCode === 400, res.body);
      } else {
        const res = await reg.inject({ method: 'DELETE', url: `/v2/${repo}/manifests/${digest}` });
        if (res.statusCode === 202) stats.deletes++;
        else assert.equal(res.statusCode, 404, res.body);
      }
    } else {
      // Mount a shared layer from another repository, then push an image using it.
      const layer = pick(SHARED);
      const from = pick(REPOS);
      const res = await reg.inject({
        method: 'POST',
        url: `/v2/${repo}/blobs/uploads/?mount=${sha256(layer)}&from=${from}`,
      });
      assert.ok(res.statusCode === 201 || res.statusCode === 202, res.body);
      if (res.statusCode === 201) stats.mounts++;
      const pushed = await pushImage(reg, repo, pick(TAGS));
      if (pushed) stats.pushes++;
      else stats.retries++;
    }
  }
}

async function collectLoop(reg: TestRegistry, until: number, stats: Stats): Promise<void> {
  while (Date.now() < until) {
    try {
      const run = await reg.services.gc.runHere({ dryRun: false, trigger: 'cli', requestedBy: null });
      assert.equal(run.state, 'succeeded', run.error ?? '');
      stats.collections++;
    } catch (e) {
      if (!(e instanceof GcBusyError)) throw e;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Every manifest reachable from a tag (and its index children) pulls with every blob, digests verified. */
async function verifyTagged(reg: TestRegistry): Promise<number> {
  let checked = 0;
  const blob = async (repo: string, digest: string): Promise<void> => {
    const res = await reg.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digest}` });
    assert.equal(res.statusCode, 200, `blob ${digest} of ${repo}: ${res.body}`);
    assert.equal(sha256(res.rawPayload), digest);
    checked++;
  };
  const manifest = async (repo: string, reference: string): Promise<void> => {
    const res = await reg.inject({
      method: 'GET',
      url: `/v2/${repo}/manifests/${reference}`,
      headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` },
    });
    assert.equal(res.statusCode, 200, `manifest ${repo}:${reference}: ${res.body}`);
    const doc = JSON.parse(res.rawPayload.toString('utf8')) as {
      config?: Descriptor;
      layers?: Descriptor[];
      manifests?: Descriptor[];
    };
    for (const child of doc.manifests ?? []) await manifest(repo, child.digest);
    for (const d of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) await blob(repo, d.digest);
  };
  for (const repo of REPOS) {
    const tags = await reg.inject({ method: 'GET', url: `/v2/${repo}/tags/list` });
    if (tags.statusCode === 404) continue;
    for (const tag of json<{ tags: string[] | null }>(tags).tags ?? []) await manifest(repo, tag);
  }
  return checked;
}

/** Blob digests in storage that no manifest present references. */
async function unreferencedInStorage(reg: TestRegistry): Promise<string[]> {
  const db = reg.services.metadata as KyselyMetadataStore as unknown as {
    gcStore(): { blobFacts(d: never[], now: number): Promise<{ digest: string; referencedBy: number[] }[]> };
  };
  const digests: string[] = [];
  for await (const key of reg.services.storage.list(BLOBS_PREFIX)) {
    const d = digestOfKey(key);
    if (d !== null) digests.push(d);
  }
  const facts = await db.gcStore().blobFacts(digests as never[], Date.now());
  const referenced = new Set(facts.filter((f) => f.referencedBy.length > 0).map((f) => f.digest));
  return digests.filter((d) => !referenced.has(d));
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(
    `garbage collection under load on ${dialect}`,
    { skip: dialect === 'postgres' ? pgSkip : false },
    () => {
      let reg: TestRegistry;
      let schema: string | null = null;
      before(async () => {
        schema = dialect === 'postgres' ? `berth_test_${randomBytes(6).toString('hex')}` : null;
        reg = await createTestRegistry({
          'gc.blobGracePeriod': 0,
          'gc.manifestGracePeriod': 0,
          ...(schema
            ? {
                'metadata.driver': 'postgres',
                'metadata.postgres.url': POSTGRES_URL,
                'metadata.postgres.schema': schema,
              }
            : {}),
        });
      });
      after(async () => {
        await reg?.dispose();
        if (schema) {
          const admin = new pg.Client({ connectionString: POSTGRES_URL });
          await admin.connect();
          await admin.query(`drop schema if exists "${schema}" cascade`).finally(() => admin.end());
        }
      });

      it(`loses no referenced blob while ${WRITERS} writers race a collection every second for ${SECONDS} s`, async () => {
        const stats: Stats = {
          pushes: 0,
          retries: 0,
          untags: 0,
          deletes: 0,
          mounts: 0,
          indexes: 0,
          collections: 0,
        };
        const until = Date.now() + SECONDS * 1000;
        await Promise.all([
          ...Array.from({ length: WRITERS }, () => writer(reg, until, stats)),
          collectLoop(reg, until, stats),
        ]);
        // The load was real: every kind of write happened, and collections ran throughout.
        assert.ok(stats.pushes > 20, JSON.stringify(stats));
        assert.ok(stats.untags > 0 && stats.deletes > 0 && stats.indexes > 0, JSON.stringify(stats));
        assert.ok(stats.collections >= Math.min(5, SECONDS / 2), JSON.stringify(stats));

        const checked = await verifyTagged(reg);
        assert.ok(checked > 0, 'some tagged content survived to be checked');

        const final = await reg.services.gc.runHere({ dryRun: false, trigger: 'cli', requestedBy: null });
        assert.equal(final.state, 'succeeded');
        assert.deepEqual(await unreferencedInStorage(reg), []);
        // The collections deleted what the writers let go of, and the tagged content still pulls.
        const runs = await reg.services.gc.list(1000);
        assert.ok(runs.reduce((n, r) => n + r.progress.blobsDeleted, 0) > 0);
        await verifyTagged(reg);
        console.log(`${dialect}: ${JSON.stringify(stats)}, ${checked} blobs verified`);
      });
    },
  );
}
