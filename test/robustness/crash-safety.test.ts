/**
 * Crash safety with a real process and SIGKILL.
 *
 * 1. Committed content (blobs, a tagged manifest) is pushed first.
 * 2. Several rounds: many concurrent pushes (slow monolithic `POST ?digest=` of multi-MiB blobs, chunked PATCH
 *    sessions, a streamed PATCH, small blobs, manifest PUTs), then SIGKILL at a seeded random moment in the middle.
 * 3. After each kill: the SQLite database passes `integrity_check`, the server restarts on the same data dir, and
 *    - every committed blob and manifest is intact (exact bytes);
 *    - everything the server acknowledged (201) before the kill is there (a kill is not a power loss);
 *    - every visible blob (HEAD 200) has exactly the right bytes: no partial blob is ever visible;
 *    - every manifest visible by tag is the pushed one and its blobs exist;
 *    - every interrupted session either continues (status Range = what counted, PATCH from there, PUT gives the
 *      right digest) or, when its completing PUT was in flight, answers 404 BLOB_UPLOAD_UNKNOWN;
 *    - the catalog and tag lists answer.
 * 4. An explicit scenario: sessions whose chunks had completed before the kill continue after restart, and a chunk
 *    cut by the kill does not count (Range shows only completed chunks; continuing yields the right digest). The
 *    bytes of the monolithic push cut by the kill, which no session owns, are gone after the first purge round
 *    (the restart is dated an hour after the kill, past the orphan grace), and no session's bytes are touched.
 *
 * Reproduce another schedule with `BERTH_CRASH_SEED=<n>`; the seed is part of the suite name.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { BetterSqlite3 as Database } from '../../src/metadata/dialects.ts';
import {
  completeUpload,
  imageManifest,
  locationPath,
  mulberry32,
  OCI_MANIFEST,
  patchChunk,
  pushBlob,
  pushBlobChunked,
  pushManifest,
  randomBytesFrom,
  rangeSize,
  request,
  sha256,
  sleep,
  slowBody,
  startUpload,
  withQuery,
  type HttpResponse,
} from '../helpers/http-client.ts';
import { startBerth, type RunningBerth } from '../helpers/server.ts';

const SEED = Number(process.env.BERTH_CRASH_SEED ?? 0xc7a5b3e1) >>> 0;
const KiB = 1024;
const MiB = 1024 * KiB;

interface BlobAttempt {
  readonly repo: string;
  readonly digest: string;
  readonly data: Buffer;
  /** The server answered 201. */
  acked: boolean;
}

interface ManifestAttempt {
  readonly repo: string;
  readonly tag: string;
  readonly bytes: Buffer;
  readonly digest: string;
  acked: boolean;
}

interface SessionAttempt {
  readonly repo: string;
  readonly data: Buffer;
  readonly digest: string;
  /** Location of the session once the POST answered. */
  location?: string;
  /** Bytes the server acknowledged (202 with Range). */
  acked: number;
  /** The chunk being sent when the process died, and whether all its bytes had been written to the socket. */
  inflight: { start: number; length: number; fullySent: boolean } | null;
  putStarted: boolean;
  completed: boolean;
}

/** A body that records when its last byte has been handed to the socket. */
async function* tracked(
  data: Buffer,
  chunk: number,
  delayMs: number,
  onAllSent: () => void,
): AsyncGenerator<Buffer> {
  yield* slowBody(data, chunk, delayMs);
  onAllSent();
}

/** A body that sends `data` and then stalls until `release` resolves (a request cut by the kill). */
async function* stalled(data: Buffer, release: Promise<void>): AsyncGenerator<Buffer> {
  yield* slowBody(data, 64 * KiB, 0);
  await release;
}

/** Runs `fn` on a copy of the database files, so that looking changes nothing the restarted server will see. */
async function withDatabaseCopy<T>(
  dataDir: string,
  fn: (conn: InstanceType<typeof Database>) => T,
): Promise<T> {
  const db = path.join(dataDir, 'berth.db');
  await stat(db); // the embedded default puts it there
  const copyDir = await mkdtemp(path.join(tmpdir(), 'berth-dbcheck-'));
  try {
    for (const suffix of ['', '-wal', '-shm']) {
      await copyFile(`${db}${suffix}`, path.join(copyDir, `berth.db${suffix}`)).catch(
        (e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        },
      );
    }
    const conn = new Database(path.join(copyDir, 'berth.db'));
    try {
      return fn(conn);
    } finally {
      conn.close();
    }
  } finally {
    await rm(copyDir, { recursive: true, force: true });
  }
}

/** `PRAGMA integrity_check` and `foreign_key_check` on a copy of the database files. */
async function checkDatabase(dataDir: string): Promise<void> {
  await withDatabaseCopy(dataDir, (conn) => {
    assert.equal(
      conn.pragma('integrity_check', { simple: true }),
      'ok',
      'SQLite integrity_check after SIGKILL',
    );
    assert.deepEqual(conn.pragma('foreign_key_check'), [], 'SQLite foreign_key_check after SIGKILL');
  });
}

/** The upload ids that session rows reference. */
function sessionUploadIds(dataDir: string): Promise<string[]> {
  return withDatabaseCopy(dataDir, (conn) => {
    const rows = conn.prepare('select handle from upload_sessions').all() as { handle: string }[];
    return rows.map((r) => (JSON.parse(r.handle) as { id: string }).id).sort();
  });
}

/**
 * Whether the current slot of the upload purge schedule has been enqueued (read live: WAL mode lets a reader in
 * beside the server): after that, no other run of the schedule is due until the next slot.
 */
function purgeSlotFired(dataDir: string): boolean {
  const conn = new Database(path.join(dataDir, 'berth.db'), { readonly: true });
  try {
    return (
      conn
        .prepare("select 1 from jobs where queue = 'upload-purge' and dedupe_key like 'schedule:%'")
        .get() !== undefined
    );
  } finally {
    conn.close();
  }
}

/** The upload ids the filesystem driver holds bytes for. */
async function storedUploadIds(dataDir: string): Promise<string[]> {
  return (await readdir(path.join(dataDir, 'blobs', '_uploads'))).sort();
}

function errorCode(res: HttpResponse): string | undefined {
  try {
    return (JSON.parse(res.body.toString()) as { errors?: { code?: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

/** Sizes of the regular files below `dir` (except the database), for waiting on partial writes. */
async function fileSizes(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || entry.name.startsWith('berth.db')) continue;
    const st = await stat(path.join(entry.parentPath, entry.name)).catch(() => null);
    if (st) out.push(st.size);
  }
  return out;
}

/** Waits until files of all `sizes` exist below `dir`; false after `timeoutMs`. */
async function waitForFileSizes(dir: string, sizes: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const have = await fileSizes(dir);
    if (sizes.every((s) => have.includes(s))) return true;
    await sleep(20);
  }
  return false;
}

class Verifier {
  /** Blobs verified byte-for-byte in this pass (repo + digest). */
  private readonly seen = new Set<string>();
  readonly problems: string[] = [];

  constructor(private readonly url: string) {}

  fail(message: string): void {
    this.problems.push(message);
  }

  /** HEAD; when visible (or `mustExist`), GET and compare with `data` (or just the digest when unknown). */
  async blob(
    repo: string,
    digest: string,
    data: Buffer | undefined,
    mustExist: boolean,
    why: string,
  ): Promise<boolean> {
    const key = `${repo}@${digest}`;
    if (this.seen.has(key)) return true;
    const head = await request(this.url, `/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
    if (head.status === 404) {
      if (mustExist) this.fail(`${why}: blob ${repo}@${digest} is gone after the kill (HEAD 404)`);
      return false;
    }
    if (head.status !== 200) {
      this.fail(`${why}: HEAD blob ${repo}@${digest} answered ${head.status}`);
      return false;
    }
    if (data && head.headers['content-length'] !== String(data.length)) {
      this.fail(
        `${why}: HEAD ${repo}@${digest} Content-Length ${head.headers['content-length']}, expected ${data.length}`,
      );
    }
    const get = await request(this.url, `/v2/${repo}/blobs/${digest}`);
    if (get.status !== 200) {
      this.fail(`${why}: blob ${repo}@${digest} is visible to HEAD but GET answered ${get.status}`);
      return false;
    }
    if (sha256(get.body) !== digest) {
      this.fail(
        `${why}: blob ${repo}@${digest} is visible with wrong bytes (${get.body.length} B, ${sha256(get.body)})`,
      );
      return false;
    }
    if (data && !get.body.equals(data)) this.fail(`${why}: blob ${repo}@${digest} bytes differ`);
    this.seen.add(key);
    return true;
  }

  /** GET by tag; when visible (or `mustExist`), check it is exactly `bytes` and that every blob it names exists. */
  async manifest(
    m: { repo: string; tag: string; bytes: Buffer; digest: string },
    mustExist: boolean,
    why: string,
  ): Promise<void> {
    const res = await request(this.url, `/v2/${m.repo}/manifests/${m.tag}`, {
      headers: { Accept: OCI_MANIFEST },
    });
    if (res.status === 404) {
      if (mustExist) this.fail(`${why}: manifest ${m.repo}:${m.tag} is gone after the kill`);
      else if (errorCode(res) !== 'MANIFEST_UNKNOWN')
        this.fail(`${why}: 404 for ${m.repo}:${m.tag} with ${errorCode(res)}`);
      return;
    }
    if (res.status !== 200) {
      this.fail(
        `${why}: GET manifest ${m.repo}:${m.tag} answered ${res.status} ${res.body.toString().slice(0, 200)}`,
      );
      return;
    }
    if (!res.body.equals(m.bytes)) {
      this.fail(`${why}: manifest ${m.repo}:${m.tag} is visible with other bytes (${res.body.length} B)`);
      return;
    }
    if (res.headers['docker-content-digest'] !== m.digest || sha256(res.body) !== m.digest) {
      this.fail(
        `${why}: manifest ${m.repo}:${m.tag} digest header ${String(res.headers['docker-content-digest'])}`,
      );
    }
    const parsed = JSON.parse(res.body.toString()) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    for (const d of [parsed.config.digest, ...parsed.layers.map((l) => l.digest)]) {
      await this.blob(
        m.repo,
        d,
        undefined,
        true,
        `${why}: blob referenced by visible manifest ${m.repo}:${m.tag}`,
      );
    }
  }

  /**
   * An interrupted session: 204 with a Range that only counts acknowledged chunks (plus the in-flight one when
   * all of its bytes had been sent), then continues to a correct blob; or 404 BLOB_UPLOAD_UNKNOWN when its
   * completing PUT may have claimed it.
   */
  async session(s: SessionAttempt, why: string): Promise<void> {
    if (!s.location || s.completed) return;
    const status = await request(this.url, s.location);
    if (status.status === 404) {
      if (errorCode(status) !== 'BLOB_UPLOAD_UNKNOWN')
        this.fail(`${why}: session 404 with ${errorCode(status)}`);
      else if (!s.putStarted)
        this.fail(`${why}: session lost by the kill (404) although it was never completed`);
      s.completed = true;
      return;
    }
    if (status.status !== 204) {
      this.fail(`${why}: session status answered ${status.status} ${status.body.toString().slice(0, 200)}`);
      return;
    }
    const size = rangeSize(status);
    const allowed = new Set([s.acked]);
    if (s.inflight?.fullySent) allowed.add(s.inflight.start + s.inflight.length);
    if (s.putStarted) allowed.add(s.data.length);
    if (!allowed.has(size)) {
      this.fail(
        `${why}: session Range says ${size} bytes; acknowledged ${s.acked}, allowed ${[...allowed].join(' or ')}`,
      );
      return;
    }
    let location = locationPath(status);
    if (size < s.data.length) {
      const rest = s.data.subarray(size);
      const res = await request(this.url, location, {
        method: 'PATCH',
        headers: { 'Content-Range': `${size}-${s.data.length - 1}` },
        body: rest,
      });
      if (res.status !== 202 || rangeSize(res) !== s.data.length) {
        this.fail(
          `${why}: continuing the session from ${size} answered ${res.status} Range ${String(res.headers.range)}`,
        );
        return;
      }
      location = locationPath(res);
    }
    const done = await completeUpload(this.url, location, s.digest);
    if (done.status !== 201 || done.headers['docker-content-digest'] !== s.digest) {
      this.fail(
        `${why}: completing the continued session answered ${done.status} ${done.body.toString().slice(0, 200)}`,
      );
      return;
    }
    s.completed = true;
    await this.blob(s.repo, s.digest, s.data, true, `${why}: blob of a continued session`);
  }
}

describe(`crash safety with SIGKILL (seed 0x${SEED.toString(16)})`, () => {
  let parent: string;
  let dataDir: string;
  let berth: RunningBerth | undefined;
  const rand = mulberry32(SEED);
  const base = {
    repo: 'crash/base',
    blobs: [] as { digest: string; data: Buffer }[],
    manifests: [] as { repo: string; tag: string; bytes: Buffer; digest: string }[],
  };
  const blobs: BlobAttempt[] = [];
  const manifests: ManifestAttempt[] = [];
  const sessions: SessionAttempt[] = [];

  const url = (): string => (berth as RunningBerth).url;

  before(async () => {
    parent = await mkdtemp(path.join(tmpdir(), 'berth-crash-'));
    dataDir = path.join(parent, 'data');
    await mkdir(dataDir);
    berth = await startBerth({ dataDir });
    // Committed content: blobs pushed monolithically and in chunks, two tagged manifests.
    const config = Buffer.from(
      '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}',
    );
    const layers = [
      randomBytesFrom(rand, 1 * KiB),
      randomBytesFrom(rand, 300 * KiB),
      randomBytesFrom(rand, 2 * MiB + 17),
    ];
    base.blobs.push({ digest: await pushBlob(url(), base.repo, config), data: config });
    base.blobs.push({
      digest: await pushBlob(url(), base.repo, layers[0] as Buffer),
      data: layers[0] as Buffer,
    });
    base.blobs.push({
      digest: await pushBlob(url(), base.repo, layers[1] as Buffer),
      data: layers[1] as Buffer,
    });
    base.blobs.push({
      digest: await pushBlobChunked(url(), base.repo, layers[2] as Buffer, 512 * KiB),
      data: layers[2] as Buffer,
    });
    const ref = (i: number): { digest: string; size: number } => ({
      digest: (base.blobs[i] as { digest: string }).digest,
      size: (base.blobs[i] as { data: Buffer }).data.length,
    });
    for (const [tag, layerIdx] of [
      ['v1', [1, 2]],
      ['v2', [3]],
    ] as const) {
      const bytes = imageManifest(ref(0), layerIdx.map(ref));
      const digest = await pushManifest(url(), base.repo, tag, bytes);
      assert.equal(digest, sha256(bytes));
      base.manifests.push({ repo: base.repo, tag, bytes, digest });
    }
  });

  after(async () => {
    await berth?.kill();
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  /** Every check of a restarted registry; fails with the list of problems found. */
  async function verifyAfterRestart(t: TestContext): Promise<void> {
    const v = new Verifier(url());
    for (const b of base.blobs) await v.blob(base.repo, b.digest, b.data, true, 'committed blob');
    for (const m of base.manifests) await v.manifest(m, true, 'committed manifest');
    let visible = 0;
    for (const b of blobs) {
      if (await v.blob(b.repo, b.digest, b.data, b.acked, b.acked ? 'acknowledged blob' : 'interrupted blob'))
        visible++;
    }
    for (const m of manifests)
      await v.manifest(m, m.acked, m.acked ? 'acknowledged manifest' : 'interrupted manifest');
    for (const s of sessions) await v.session(s, `session in ${s.repo} (${s.data.length} B)`);
    const catalog = await request(url(), '/v2/_catalog');
    if (catalog.status !== 200) v.fail(`GET /v2/_catalog answered ${catalog.status}`);
    else {
      const repos = (JSON.parse(catalog.body.toString()) as { repositories: string[] }).repositories;
      if (!repos.includes(base.repo)) v.fail(`catalog lacks ${base.repo}: ${repos.join(', ')}`);
    }
    for (const repo of new Set([base.repo, ...manifests.filter((m) => m.acked).map((m) => m.repo)])) {
      const tags = await request(url(), `/v2/${repo}/tags/list`);
      if (tags.status !== 200) v.fail(`GET /v2/${repo}/tags/list answered ${tags.status}`);
    }
    t.diagnostic(
      `blobs attempted ${blobs.length} (acked ${blobs.filter((b) => b.acked).length}, visible ${visible}); ` +
        `manifests attempted ${manifests.length} (acked ${manifests.filter((m) => m.acked).length}); ` +
        `sessions ${sessions.length}`,
    );
    assert.deepEqual(v.problems, [], `after SIGKILL and restart:\n  ${v.problems.join('\n  ')}`);
  }

  const ROUND_DELAYS = [
    [150, 450],
    [500, 1100],
    [1100, 1900],
  ] as const;
  for (const [round, [lo, hi]] of ROUND_DELAYS.entries()) {
    const delay = Math.round(lo + mulberry32(SEED + round)() * (hi - lo));
    it(`round ${round + 1}: SIGKILL ${delay} ms into concurrent pushes, then restart and verify`, async (t) => {
      const started = Date.now();
      const r = mulberry32(SEED * 31 + round);
      const repo = `crash/round${round + 1}`;
      const u = url();
      const anomalies: string[] = [];
      let killed = false;
      const ops: Promise<unknown>[] = [];
      const roundBlobs: BlobAttempt[] = [];

      // Uploads are paced so that they last from about 0.6x to 2x the upper kill delay: the kill lands in the
      // middle of them, at different stages for each.
      const paced = (i: number, pieces: number): number =>
        Math.max(1, Math.round((hi * (0.6 + 0.45 * i)) / pieces));

      // Slow monolithic pushes of multi-MiB blobs (half with a Content-Length, half chunked).
      const monolithic: BlobAttempt[] = [];
      for (let i = 0; i < 4; i++) {
        const data = randomBytesFrom(r, 3 * MiB + Math.floor(r() * 512 * KiB));
        const rec: BlobAttempt = { repo, digest: sha256(data), data, acked: false };
        blobs.push(rec);
        monolithic.push(rec);
        ops.push(
          request(u, `/v2/${repo}/blobs/uploads/?digest=${rec.digest}`, {
            method: 'POST',
            headers: i % 2 === 0 ? { 'Content-Length': data.length } : {},
            body: slowBody(data, 64 * KiB, paced(i, data.length / (64 * KiB))),
            timeoutMs: 30_000,
          }).then(
            (res) => {
              if (res.status === 201) {
                rec.acked = true;
                roundBlobs.push(rec);
              } else
                anomalies.push(`monolithic push answered ${res.status} ${res.body.toString().slice(0, 200)}`);
            },
            () => undefined,
          ),
        );
      }

      // Chunked sessions: 256 KiB chunks, each streamed in pieces, then PUT ?digest=.
      const chunked: SessionAttempt[] = [];
      for (let i = 0; i < 4; i++) {
        const data = randomBytesFrom(r, 2 * MiB + Math.floor(r() * 256 * KiB));
        const s: SessionAttempt = {
          repo,
          data,
          digest: sha256(data),
          acked: 0,
          inflight: null,
          putStarted: false,
          completed: false,
        };
        sessions.push(s);
        chunked.push(s);
        const pieceDelay = paced(i, data.length / (32 * KiB));
        ops.push(
          (async () => {
            const chunk = 256 * KiB;
            await sleep(i * 30);
            s.location = await startUpload(u, repo);
            for (let off = 0; off < data.length; off += chunk) {
              const piece = data.subarray(off, off + chunk);
              const inflight = { start: off, length: piece.length, fullySent: false };
              s.inflight = inflight;
              const res = await request(u, s.location, {
                method: 'PATCH',
                headers: {
                  'Content-Range': `${off}-${off + piece.length - 1}`,
                  'Content-Length': piece.length,
                },
                body: tracked(piece, 32 * KiB, pieceDelay, () => (inflight.fullySent = true)),
                timeoutMs: 30_000,
              });
              if (res.status !== 202) {
                anomalies.push(
                  `PATCH ${off}+${piece.length} answered ${res.status} ${res.body.toString().slice(0, 200)}`,
                );
                return;
              }
              s.acked = rangeSize(res);
              s.inflight = null;
              s.location = locationPath(res);
              if (s.acked !== off + piece.length)
                anomalies.push(`PATCH acknowledged Range ${String(res.headers.range)}`);
            }
            s.putStarted = true;
            const res = await completeUpload(u, s.location, s.digest);
            if (res.status === 201) {
              s.completed = true;
              const rec: BlobAttempt = { repo, digest: s.digest, data, acked: true };
              blobs.push(rec);
              roundBlobs.push(rec);
            } else
              anomalies.push(`completing PUT answered ${res.status} ${res.body.toString().slice(0, 200)}`);
          })().catch(() => undefined),
        );
      }

      // One streamed PATCH with neither Content-Range nor Content-Length (as Docker sends it).
      {
        const data = randomBytesFrom(r, 2 * MiB);
        const s: SessionAttempt = {
          repo,
          data,
          digest: sha256(data),
          acked: 0,
          inflight: null,
          putStarted: false,
          completed: false,
        };
        sessions.push(s);
        chunked.push(s);
        ops.push(
          (async () => {
            s.location = await startUpload(u, repo);
            const inflight = { start: 0, length: data.length, fullySent: false };
            s.inflight = inflight;
            const res = await request(u, s.location, {
              method: 'PATCH',
              body: tracked(
                data,
                64 * KiB,
                paced(1, data.length / (64 * KiB)),
                () => (inflight.fullySent = true),
              ),
              timeoutMs: 30_000,
            });
            if (res.status !== 202) return anomalies.push(`streamed PATCH answered ${res.status}`);
            s.acked = rangeSize(res);
            s.inflight = null;
            s.location = locationPath(res);
            s.putStarted = true;
            const done = await completeUpload(u, s.location, s.digest);
            if (done.status === 201) {
              s.completed = true;
              const rec: BlobAttempt = { repo, digest: s.digest, data, acked: true };
              blobs.push(rec);
              roundBlobs.push(rec);
            } else anomalies.push(`completing streamed session answered ${done.status}`);
          })().catch(() => undefined),
        );
      }

      // Small blobs and manifests, back to back until the kill.
      ops.push(
        (async () => {
          for (let i = 0; !killed; i++) {
            await sleep(5);
            const data = randomBytesFrom(r, 1 + Math.floor(r() * 64 * KiB));
            const rec: BlobAttempt = { repo, digest: sha256(data), data, acked: false };
            blobs.push(rec);
            const res = await request(u, `/v2/${repo}/blobs/uploads/?digest=${rec.digest}`, {
              method: 'POST',
              body: data,
            });
            if (res.status === 201) {
              rec.acked = true;
              roundBlobs.push(rec);
            } else anomalies.push(`small push answered ${res.status}`);
          }
        })().catch(() => undefined),
      );
      ops.push(
        (async () => {
          const cfg = base.blobs[0] as { digest: string; data: Buffer };
          // The base blobs are referenced from this repository too: mount them first.
          for (const b of base.blobs) {
            const m = await request(u, `/v2/${repo}/blobs/uploads/?mount=${b.digest}&from=${base.repo}`, {
              method: 'POST',
            });
            if (m.status !== 201) anomalies.push(`mount answered ${m.status}`);
          }
          for (let i = 0; !killed; i++) {
            await sleep(15);
            const own = roundBlobs.slice(-3).map((b) => ({ digest: b.digest, size: b.data.length }));
            const layers = [
              ...base.blobs.slice(1, 1 + (i % 3)).map((b) => ({ digest: b.digest, size: b.data.length })),
              ...own,
            ];
            const bytes = imageManifest({ digest: cfg.digest, size: cfg.data.length }, layers, {
              n: `${round}-${i}`,
            });
            const rec: ManifestAttempt = {
              repo,
              tag: `r${round + 1}-m${i}`,
              bytes,
              digest: sha256(bytes),
              acked: false,
            };
            manifests.push(rec);
            const res = await request(u, `/v2/${repo}/manifests/${rec.tag}`, {
              method: 'PUT',
              headers: { 'Content-Type': OCI_MANIFEST },
              body: bytes,
            });
            if (res.status === 201) rec.acked = true;
            else anomalies.push(`manifest PUT answered ${res.status} ${res.body.toString().slice(0, 200)}`);
          }
        })().catch(() => undefined),
      );

      await sleep(delay);
      killed = true;
      await (berth as RunningBerth).kill();
      await Promise.all(ops);
      const state = (s: SessionAttempt): string =>
        s.completed
          ? 'done'
          : `${s.acked}/${s.data.length}${s.inflight ? ` +${s.inflight.length}${s.inflight.fullySent ? ' sent' : ' cut'}` : ''}${s.putStarted ? ' PUT' : ''}`;
      t.diagnostic(
        `killed after ${delay} ms; monolithic acked ${monolithic.filter((b) => b.acked).length}/${monolithic.length}; ` +
          `sessions ${chunked.map(state).join(', ')}`,
      );
      assert.deepEqual(anomalies, [], 'every answer before the kill was a success');

      await checkDatabase(dataDir);
      berth = await startBerth({ dataDir });
      await verifyAfterRestart(t);
      // The restarted registry takes new pushes.
      const after = randomBytesFrom(r, 100 * KiB);
      await pushBlobChunked(url(), repo, after, 32 * KiB);
      const elapsed = Date.now() - started;
      t.diagnostic(`round took ${elapsed} ms`);
      assert.ok(elapsed < 60_000, `round took ${elapsed} ms`);
    });
  }

  it('a graceful restart after the kills still serves everything', async (t) => {
    await (berth as RunningBerth).stop();
    await checkDatabase(dataDir);
    berth = await startBerth({ dataDir });
    await verifyAfterRestart(t);
  });
});

describe('upload sessions continue after SIGKILL', () => {
  let parent: string;
  let dataDir: string;
  let berth: RunningBerth | undefined;
  let release: () => void = () => undefined;

  before(async () => {
    parent = await mkdtemp(path.join(tmpdir(), 'berth-resume-'));
    dataDir = path.join(parent, 'data');
    await mkdir(dataDir);
  });
  after(async () => {
    release();
    await berth?.kill();
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  it('counts completed chunks, drops the chunk cut by the kill, and completes with the right digest', async (t) => {
    const started = Date.now();
    berth = await startBerth({ dataDir });
    const rand = mulberry32(SEED ^ 0x5e551011);
    const repo = 'resume/after-kill';
    const u = berth.url;
    const stall = new Promise<void>((resolve) => (release = resolve));
    const cut: Promise<unknown>[] = [];
    const ignore = (): undefined => undefined;

    const blob = (n: number): { data: Buffer; digest: string } => {
      const data = randomBytesFrom(rand, n);
      return { data, digest: sha256(data) };
    };

    // S1: two whole chunks acknowledged before the kill.
    const s1 = blob(3 * MiB);
    let s1Loc = await startUpload(u, repo);
    s1Loc = await patchChunk(u, s1Loc, s1.data.subarray(0, MiB), 0);
    s1Loc = await patchChunk(u, s1Loc, s1.data.subarray(MiB, 2 * MiB), MiB);

    // S2: one chunk acknowledged, the second cut after 512 KiB of its 1 MiB.
    const s2 = blob(3 * MiB);
    let s2Loc = await startUpload(u, repo);
    s2Loc = await patchChunk(u, s2Loc, s2.data.subarray(0, MiB), 0);
    cut.push(
      request(u, s2Loc, {
        method: 'PATCH',
        headers: { 'Content-Range': `${MiB}-${2 * MiB - 1}`, 'Content-Length': MiB },
        body: stalled(s2.data.subarray(MiB, MiB + 512 * KiB), stall),
        timeoutMs: 60_000,
      }).catch(ignore),
    );

    // S3: the very first chunk cut (300 KiB of 1 MiB sent).
    const s3 = blob(MiB + 5);
    const s3Loc = await startUpload(u, repo);
    cut.push(
      request(u, s3Loc, {
        method: 'PATCH',
        headers: { 'Content-Range': `0-${MiB - 1}`, 'Content-Length': MiB },
        body: stalled(s3.data.subarray(0, 300 * KiB), stall),
        timeoutMs: 60_000,
      }).catch(ignore),
    );

    // S4: one chunk acknowledged, then a streamed PATCH (no Content-Range, chunked encoding) cut after 700 KiB.
    const s4 = blob(2 * MiB);
    let s4Loc = await startUpload(u, repo);
    s4Loc = await patchChunk(u, s4Loc, s4.data.subarray(0, MiB), 0);
    cut.push(
      request(u, s4Loc, {
        method: 'PATCH',
        body: stalled(s4.data.subarray(MiB, MiB + 700 * KiB), stall),
        timeoutMs: 60_000,
      }).catch(ignore),
    );

    // S5: one chunk acknowledged, the next cut after 200 KiB; after restart it is completed with no more data,
    // so the bytes past the acknowledged size must not end up in the blob.
    const s5Data = randomBytesFrom(rand, 640 * KiB);
    const s5 = { data: s5Data.subarray(0, 512 * KiB), digest: sha256(s5Data.subarray(0, 512 * KiB)) };
    let s5Loc = await startUpload(u, repo);
    s5Loc = await patchChunk(u, s5Loc, s5.data, 0);
    cut.push(
      request(u, s5Loc, {
        method: 'PATCH',
        headers: { 'Content-Range': `${512 * KiB}-${640 * KiB - 1}`, 'Content-Length': 128 * KiB },
        body: stalled(s5Data.subarray(512 * KiB, 512 * KiB + 100 * KiB), stall),
        timeoutMs: 60_000,
      }).catch(ignore),
    );

    // M: a monolithic POST ?digest= cut after 1 MiB + 123 bytes of 3 MiB: the blob must never become visible.
    const m = blob(3 * MiB);
    cut.push(
      request(u, `/v2/${repo}/blobs/uploads/?digest=${m.digest}`, {
        method: 'POST',
        headers: { 'Content-Length': m.data.length },
        body: stalled(m.data.subarray(0, MiB + 123), stall),
        timeoutMs: 60_000,
      }).catch(ignore),
    );

    // Kill once the cut bodies have reached storage (the filesystem driver writes them as they arrive).
    const partial = [MiB + 512 * KiB, 300 * KiB, MiB + 700 * KiB, 612 * KiB, MiB + 123];
    if (!(await waitForFileSizes(dataDir, partial, 5_000))) {
      t.diagnostic(
        `partial writes not all observed on disk (sizes: ${(await fileSizes(dataDir)).join(', ')}); killing anyway`,
      );
    }
    // The process dies after the purge schedule's current slot fired, as a long-running one would: the restart
    // must purge at once all the same (its startup run), not an interval later.
    const slotDeadline = Date.now() + 10_000;
    while (!purgeSlotFired(dataDir) && Date.now() < slotDeadline) await sleep(50);
    assert.ok(purgeSlotFired(dataDir), "the first process enqueued the purge schedule's current slot");
    await berth.kill();
    release();
    await Promise.all(cut);
    await checkDatabase(dataDir);

    // The cut monolithic push left bytes that no session owns. Date every upload's bytes an hour back, as if the
    // restart came that long after the kill: the first purge round must take the orphan and leave the rest.
    const owned = await sessionUploadIds(dataDir);
    const stored = await storedUploadIds(dataDir);
    assert.equal(owned.length, 5, 'S1 to S5 have their rows');
    assert.equal(stored.length, 6, 'and one more upload holds the bytes of M');
    const anHourAgo = new Date(Date.now() - 3600_000);
    for (const id of stored) {
      await utimes(path.join(dataDir, 'blobs', '_uploads', id, 'data'), anHourAgo, anHourAgo);
    }
    berth = await startBerth({ dataDir });
    const v = berth.url;
    const restarted = berth;
    const deadline = Date.now() + 20_000;
    while (!restarted.output().includes('purged stale uploads') && Date.now() < deadline) await sleep(50);
    const purged = restarted
      .output()
      .split('\n')
      .find((line) => line.includes('purged stale uploads'));
    assert.ok(purged, `no purge round reported within 20 s of the restart:\n${restarted.output()}`);
    assert.match(purged, /"sessions":0,"orphans":1/);
    assert.deepEqual(await storedUploadIds(dataDir), owned, 'only the orphan is gone');

    const status = async (loc: string): Promise<HttpResponse> => {
      const res = await request(v, loc);
      assert.equal(res.status, 204, `session status after restart: ${res.status} ${res.body.toString()}`);
      return res;
    };
    const verifyBlob = async (digest: string, data: Buffer): Promise<void> => {
      const res = await request(v, `/v2/${repo}/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.equal(sha256(res.body), digest);
      assert.ok(res.body.equals(data));
    };

    // S1: Range covers both chunks; the third completes it.
    let res = await status(s1Loc);
    assert.equal(res.headers.range, `0-${2 * MiB - 1}`, 'S1: both acknowledged chunks count');
    s1Loc = await patchChunk(v, locationPath(res), s1.data.subarray(2 * MiB), 2 * MiB);
    res = await completeUpload(v, s1Loc, s1.digest);
    assert.equal(res.status, 201, res.body.toString());
    assert.equal(res.headers['docker-content-digest'], s1.digest);
    await verifyBlob(s1.digest, s1.data);

    // S2: only the first chunk counts; a chunk claiming the cut offset is refused; resending the cut chunk and
    // putting the last one in the PUT body completes it.
    res = await status(s2Loc);
    assert.equal(res.headers.range, `0-${MiB - 1}`, 'S2: the chunk cut by the kill does not count');
    const wrong = await request(v, locationPath(res), {
      method: 'PATCH',
      headers: { 'Content-Range': `${MiB + 512 * KiB}-${2 * MiB - 1}` },
      body: s2.data.subarray(MiB + 512 * KiB, 2 * MiB),
    });
    assert.equal(wrong.status, 416, 'a chunk continuing the cut bytes is out of order');
    assert.equal(wrong.headers.range, `0-${MiB - 1}`);
    s2Loc = await patchChunk(v, locationPath(res), s2.data.subarray(MiB, 2 * MiB), MiB);
    res = await request(v, withQuery(s2Loc, 'digest', s2.digest), {
      method: 'PUT',
      headers: { 'Content-Range': `${2 * MiB}-${3 * MiB - 1}` },
      body: s2.data.subarray(2 * MiB),
    });
    assert.equal(res.status, 201, res.body.toString());
    assert.equal(res.headers['docker-content-digest'], s2.digest);
    await verifyBlob(s2.digest, s2.data);

    // S3: nothing counts; the whole blob sent from 0 completes it.
    res = await status(s3Loc);
    assert.equal(res.headers.range, '0-0', 'S3: the first chunk cut by the kill does not count');
    const s3Next = await patchChunk(v, locationPath(res), s3.data, 0);
    res = await completeUpload(v, s3Next, s3.digest);
    assert.equal(res.status, 201, res.body.toString());
    await verifyBlob(s3.digest, s3.data);

    // S4: the streamed PATCH cut by the kill does not count; a new streamed PATCH with the rest completes it.
    res = await status(s4Loc);
    assert.equal(res.headers.range, `0-${MiB - 1}`, 'S4: the cut streamed PATCH does not count');
    res = await request(v, locationPath(res), {
      method: 'PATCH',
      body: slowBody(s4.data.subarray(MiB), 64 * KiB, 0),
    });
    assert.equal(res.status, 202);
    assert.equal(res.headers.range, `0-${2 * MiB - 1}`);
    res = await completeUpload(v, locationPath(res), s4.digest);
    assert.equal(res.status, 201, res.body.toString());
    await verifyBlob(s4.digest, s4.data);

    // S5: completing right away gives exactly the acknowledged bytes, not the cut ones past them.
    res = await status(s5Loc);
    assert.equal(res.headers.range, `0-${512 * KiB - 1}`);
    res = await completeUpload(v, locationPath(res), s5.digest);
    assert.equal(
      res.status,
      201,
      `S5 completes with the digest of the acknowledged bytes: ${res.body.toString()}`,
    );
    await verifyBlob(s5.digest, s5.data);

    // M: the cut monolithic push left nothing visible; pushing it again works.
    res = await request(v, `/v2/${repo}/blobs/${m.digest}`, { method: 'HEAD' });
    assert.equal(res.status, 404, 'a monolithic push cut by the kill is not visible');
    await pushBlob(v, repo, m.data);
    await verifyBlob(m.digest, m.data);

    const catalog = await request(v, '/v2/_catalog');
    assert.equal(catalog.status, 200);
    assert.ok(
      (JSON.parse(catalog.body.toString()) as { repositories: string[] }).repositories.includes(repo),
    );
    const elapsed = Date.now() - started;
    t.diagnostic(`took ${elapsed} ms`);
    assert.ok(elapsed < 60_000);
  });
});
