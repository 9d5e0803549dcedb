/**
 * Garbage collection across processes:
 * - a `berth gc` process killed with SIGKILL in the middle of its blob sweep: afterwards no referenced blob is
 *   lost, and the next run reclaims everything the killed one left (rows marked as deleting, files);
 * - three instances on PostgreSQL + S3 (the patched s3rver of `test/helpers/fake-s3.ts`): one collects every second
 *   while pushes, retags and untags go through the other two; afterwards every tagged image pulls completely and a
 *   final collection leaves no unreferenced blob in the bucket.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateBucketCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import pg from 'pg';
import { createTestRegistry, sha256 as sha256Of, type TestRegistry } from '../helpers/app.ts';
import { credentials, startFakeS3, type FakeS3 } from '../helpers/fake-s3.ts';
import {
  imageManifest,
  pushBlob,
  pushManifest,
  request,
  sha256,
  sleep,
  type BlobRef,
} from '../helpers/http-client.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import { PROJECT_ROOT, startBerth, type RunningBerth } from '../helpers/server.ts';
import { digestOfKey, GcBusyError } from '../../src/gc/collector.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { BLOBS_PREFIX, blobKey } from '../../src/storage/paths.ts';

const ZERO_GRACE = { 'gc.blobGracePeriod': 0, 'gc.manifestGracePeriod': 0 };

describe('a garbage collection killed in the middle of its sweep', () => {
  const GARBAGE = 6000;
  let dataDir: string;
  let reg: TestRegistry;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'berth-gc-kill-'));
  });
  after(async () => {
    await reg?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('loses no referenced blob, and the next run reclaims what the killed one left', async () => {
    reg = await createTestRegistry(ZERO_GRACE, { dataDir });
    const kept = await reg.pushImage('kill/app', 'v1', { layers: 3 });
    // Garbage: blobs linked and never referenced, due at once; the collector deletes them in link order.
    const garbage: Digest[] = [];
    for (let i = 0; i < GARBAGE; i++) {
      const bytes = randomBytes(16);
      const digest = sha256Of(bytes) as Digest;
      await reg.services.storage.put(blobKey(digest), bytes);
      await reg.services.metadata.linkBlob('kill/garbage', digest, bytes.length);
      garbage.push(digest);
    }
    await reg.close();

    const blobsRoot = path.join(dataDir, 'blobs');
    const file = (d: string): string => path.join(blobsRoot, blobKey(d));
    const exists = (d: string): Promise<boolean> =>
      stat(file(d)).then(
        () => true,
        () => false,
      );
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'gc', '--data', dataDir], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        BERTH_GC_BLOB_GRACE_PERIOD: '0',
        BERTH_GC_MANIFEST_GRACE_PERIOD: '0',
        // The lease a killed collector leaves behind expires after this.
        BERTH_JOBS_LEASE_DURATION: '2s',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Kill as soon as the first garbage file is gone: the sweep has started and has most of its work ahead.
    const first = garbage[0] as string;
    const deadline = Date.now() + 60_000;
    while (await exists(first)) {
      assert.ok(Date.now() < deadline, `the collection never started deleting: ${output}`);
      await sleep(2);
    }
    child.kill('SIGKILL');
    await exited;
    let left = 0;
    for (const d of garbage) if (await exists(d)) left++;
    assert.ok(left > 0 && left < GARBAGE, `killed mid-sweep (${left} of ${GARBAGE} garbage files left)`);

    reg = await createTestRegistry(ZERO_GRACE, { dataDir });
    const pull = async (): Promise<void> => {
      for (const d of [kept.config.digest, ...kept.layers.map((l) => l.digest)]) {
        const res = await reg.inject({ method: 'GET', url: `/v2/kill/app/blobs/${d}` });
        assert.equal(res.statusCode, 200);
        assert.equal(sha256Of(res.rawPayload), d);
      }
      const m = await reg.inject({ method: 'GET', url: '/v2/kill/app/manifests/v1' });
      assert.equal(m.statusCode, 200);
    };
    await pull();

    // The killed run's lease blocks a new collection until it expires (jobs.leaseDuration).
    let run;
    for (let i = 0; ; i++) {
      try {
        run = await reg.services.gc.runHere({ dryRun: false, trigger: 'cli', requestedBy: null });
        break;
      } catch (e) {
        if (!(e instanceof GcBusyError) || i >= 100) throw e;
        await sleep(100);
      }
    }
    assert.equal(run.state, 'succeeded');
    for (const d of garbage) assert.equal(await exists(d), false, `garbage ${d} reclaimed`);
    await pull();
    const history = await reg.services.gc.list(10);
    const killed = history.find((r) => r.id !== run.id);
    assert.equal(killed?.state, 'failed', 'the killed run is recorded as interrupted');
    // Nothing in storage but the kept image's blobs.
    const stored: string[] = [];
    for await (const key of reg.services.storage.list(BLOBS_PREFIX)) {
      const d = digestOfKey(key);
      if (d !== null) stored.push(d);
    }
    assert.deepEqual(stored.sort(), [kept.config.digest, ...kept.layers.map((l) => l.digest)].sort());
  });
});

const pgSkip = await postgresSkipReason();

describe(
  'garbage collection on one instance while two others take pushes (PostgreSQL + S3)',
  { skip: pgSkip },
  () => {
    const schema = `berth_gc_${randomBytes(4).toString('hex')}`;
    const bucket = `berth-gc-${randomBytes(4).toString('hex')}`;
    let s3: FakeS3;
    let admin: pg.Pool;
    const instances: RunningBerth[] = [];
    const dataDirs: string[] = [];

    const env = (extra: Record<string, string>): Record<string, string> => ({
      BERTH_LOG_LEVEL: 'info',
      BERTH_LOG_ACCESS_LOG: 'false',
      BERTH_STORAGE_DRIVER: 's3',
      BERTH_STORAGE_S3_BUCKET: bucket,
      BERTH_STORAGE_S3_ENDPOINT: s3.endpoint,
      BERTH_STORAGE_S3_FORCE_PATH_STYLE: 'true',
      BERTH_STORAGE_S3_ACCESS_KEY_ID: credentials.accessKeyId,
      BERTH_STORAGE_S3_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      BERTH_METADATA_DRIVER: 'postgres',
      BERTH_METADATA_POSTGRES_URL: POSTGRES_URL,
      BERTH_METADATA_POSTGRES_SCHEMA: schema,
      BERTH_GC_BLOB_GRACE_PERIOD: '0',
      BERTH_GC_MANIFEST_GRACE_PERIOD: '0',
      ...extra,
    });

    before(async () => {
      s3 = await startFakeS3('multipart');
      await s3.admin.send(new CreateBucketCommand({ Bucket: bucket }));
      admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
      const roles: Record<string, string>[] = [
        // The collector: every second.
        { BERTH_GC_SCHEDULE: '* * * * * *', BERTH_JOBS_POLL_INTERVAL: '200ms' },
        // Two instances that only serve requests.
        { BERTH_JOBS_ENABLED: 'false', BERTH_GC_SCHEDULE: 'off' },
        { BERTH_JOBS_ENABLED: 'false', BERTH_GC_SCHEDULE: 'off' },
      ];
      for (const extra of roles) {
        const dataDir = await mkdtemp(path.join(tmpdir(), 'berth-gc-mi-'));
        dataDirs.push(dataDir);
        instances.push(await startBerth({ dataDir, env: env(extra) }));
      }
    });

    after(async () => {
      await Promise.all(instances.map((i) => i.stop()));
      await admin?.query(`drop schema if exists ${schema} cascade`);
      await admin?.end();
      await s3?.close();
      await Promise.all(dataDirs.map((d) => rm(d, { recursive: true, force: true })));
    });

    it('keeps every tagged image whole and leaves no unreferenced blob in the bucket', async () => {
      const shared = Array.from({ length: 4 }, () => randomBytes(512));
      const writers = [instances[1] as RunningBerth, instances[2] as RunningBerth];
      // At least 20 s of pushes racing the collector, and enough of them to matter even on a busy machine
      // (at most 90 s).
      const start = Date.now();
      let pushes = 0;
      let untags = 0;
      const going = () => Date.now() - start < 20_000 || (pushes <= 20 && Date.now() - start < 90_000);
      const write = async (instance: RunningBerth, n: number): Promise<void> => {
        while (going()) {
          const repo = `gc/app${n % 2}`;
          const tag = `t${Math.floor(Math.random() * 3)}`;
          if (Math.random() < 0.25) {
            const res = await request(instance.url, `/v2/${repo}/manifests/${tag}`, { method: 'DELETE' });
            if (res.status === 202) untags++;
            continue;
          }
          const config = Buffer.from(JSON.stringify({ os: 'linux', n: randomBytes(6).toString('hex') }));
          const layers = [shared[Math.floor(Math.random() * shared.length)] as Buffer, randomBytes(300)];
          try {
            const refs: BlobRef[] = [];
            for (const l of layers)
              refs.push({ digest: await pushBlob(instance.url, repo, l), size: l.length });
            const configRef = { digest: await pushBlob(instance.url, repo, config), size: config.length };
            await pushManifest(instance.url, repo, tag, imageManifest(configRef, refs));
            pushes++;
          } catch (e) {
            // A zero grace period lets the collector take a blob between its upload and the manifest (400
            // MANIFEST_BLOB_UNKNOWN), and a digest being deleted answers 429: push again.
            const message = (e as Error).message;
            assert.ok(/400|429/.test(message), message);
          }
          n++;
        }
      };
      await Promise.all(writers.map((w, i) => write(w, i)));
      assert.ok(pushes > 20 && untags > 0, `pushes ${pushes}, untags ${untags}`);

      // Runs happened on the collecting instance meanwhile.
      const runs = await admin.query(
        `select count(*)::int as n from ${schema}.gc_runs where state = 'succeeded'`,
      );
      assert.ok((runs.rows[0] as { n: number }).n >= 5);

      // Every tagged image pulls whole through a writer instance.
      const reader = instances[1] as RunningBerth;
      for (const repo of ['gc/app0', 'gc/app1']) {
        const tags = await request(reader.url, `/v2/${repo}/tags/list`);
        if (tags.status === 404) continue;
        for (const tag of (JSON.parse(tags.body.toString()) as { tags: string[] | null }).tags ?? []) {
          const m = await request(reader.url, `/v2/${repo}/manifests/${tag}`, {
            headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
          });
          assert.equal(m.status, 200);
          const doc = JSON.parse(m.body.toString()) as { config: BlobRef; layers: BlobRef[] };
          for (const b of [doc.config, ...doc.layers]) {
            const res = await request(reader.url, `/v2/${repo}/blobs/${b.digest}`);
            assert.equal(res.status, 200, `${repo}:${tag} ${b.digest}`);
            assert.equal(sha256(res.body), b.digest);
          }
        }
      }

      // Wait for a run that started after the last write, then compare the bucket with the references.
      const stopped = Date.now();
      for (let i = 0; ; i++) {
        const r = await admin.query(
          `select count(*)::int as n from ${schema}.gc_runs where state = 'succeeded' and started_at > $1`,
          [stopped],
        );
        if ((r.rows[0] as { n: number }).n > 0) break;
        assert.ok(i < 200, 'a collection ran after the writes');
        await sleep(100);
      }
      const referenced = new Set(
        (
          await admin.query(
            `select distinct r.digest from ${schema}.manifest_references r where r.kind = 'blob'`,
          )
        ).rows.map((r: { digest: string }) => r.digest),
      );
      const listed = await s3.admin.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: `${BLOBS_PREFIX}/` }),
      );
      const stored = (listed.Contents ?? []).map((o) => digestOfKey(o.Key ?? '')).filter((d) => d !== null);
      assert.ok(stored.length > 0);
      assert.deepEqual(
        stored.filter((d) => !referenced.has(d)),
        [],
      );
    });
  },
);
