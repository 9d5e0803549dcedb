/**
 * The synthetic registry content of the garbage collection benchmark, generated without HTTP: a model of
 * repositories, manifests, tags and blobs (with a known amount of garbage), written either straight into Berth's
 * SQLite metadata database (bulk INSERTs in large transactions) or as CNCF Distribution's filesystem layout.
 *
 * Per repository of `manifestsPerRepo` manifests (M), each manifest references 12 blobs: its own config and 7 own
 * layers, 3 layers drawn from a pool of M layers shared within the repository, and 1 of 20 base layers shared by
 * every repository. About 10 % of the manifests are untagged and due for review (garbage); 1 % of the tagged ones
 * are due too (a tag moved off them: they must be kept). Unreferenced blobs bring the total to 10 per manifest:
 * half are due (garbage), half are still within their grace period (Berth keeps them; Distribution, which has no
 * grace period, deletes them). The expected outcome is computed while generating, so the benchmark can check it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createSqliteStore, BetterSqlite3 } from '../../src/metadata/dialects.ts';

export interface GcScale {
  repos: number;
  manifestsPerRepo: number;
}

export const OWN_LAYERS = 7;
export const SHARED_PER_MANIFEST = 3;
export const BASE_LAYERS = 20;
const GARBAGE_FRACTION = 0.1;
const TAGGED_DUE_FRACTION = 0.01;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface ModelBlob {
  digest: string;
  size: number;
  /** review_after: null (not queued), in the past (due) or in the future (grace period). */
  reviewAfter: number | null;
}

export interface ModelManifest {
  digest: string;
  payload: Buffer;
  tag: string | null;
  reviewAfter: number | null;
  garbage: boolean;
  /** Config first, then layers. */
  blobs: readonly string[];
}

export interface ModelRepo {
  id: number;
  name: string;
  manifests: ModelManifest[];
  /** Blobs first seen in this repository (base layers are in `GcModel.base`). */
  blobs: ModelBlob[];
}

/** What the model holds and what a collection must delete. */
export interface GcExpectation {
  repositories: number;
  manifests: number;
  tags: number;
  blobs: number;
  references: number;
  repositoryBlobs: number;
  /** Untagged manifests due for review. */
  garbageManifests: number;
  /** Blobs Berth must delete: referenced only by garbage manifests, or unreferenced and due. */
  garbageBlobs: number;
  garbageReferences: number;
  /** repository_blobs rows of the garbage blobs. */
  garbageRepositoryBlobs: number;
  /** Unreferenced blobs still within their grace period (kept by Berth, deleted by Distribution). */
  unreferencedInGrace: number;
  /** Tagged manifests due for review (must be kept). */
  taggedDue: number;
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fakeDigest(label: string): string {
  return `sha256:${createHash('sha256').update(label).digest('hex')}`;
}

/**
 * The model: `repos()` yields one repository at a time (so the full size never sits in memory), filling
 * `expected` as it goes; `base` are the base layers, linked in every repository. `now` anchors review times.
 */
export class GcModel {
  readonly base: ModelBlob[];
  readonly expected: GcExpectation;
  private readonly baseRefs: { any: boolean; kept: boolean }[];

  constructor(
    readonly scale: GcScale,
    readonly now: number,
    private readonly seed = 1,
  ) {
    this.base = Array.from({ length: BASE_LAYERS }, (_, i) => ({
      digest: fakeDigest(`${seed}/base/${i}`),
      size: 20_000_000 + i * 1_000_003,
      reviewAfter: null,
    }));
    this.baseRefs = this.base.map(() => ({ any: false, kept: false }));
    this.expected = {
      repositories: 0,
      manifests: 0,
      tags: 0,
      blobs: BASE_LAYERS,
      references: 0,
      repositoryBlobs: 0,
      garbageManifests: 0,
      garbageBlobs: 0,
      garbageReferences: 0,
      garbageRepositoryBlobs: 0,
      unreferencedInGrace: 0,
      taggedDue: 0,
    };
  }

  get totalManifests(): number {
    return this.scale.repos * this.scale.manifestsPerRepo;
  }

  *repos(): Generator<ModelRepo> {
    const { repos, manifestsPerRepo: m } = this.scale;
    const rng = random(this.seed);
    const e = this.expected;
    // Unreferenced blobs: 10 per manifest in total, minus what manifests reference.
    const unreferencedTotal =
      10 * this.totalManifests - (repos * m * (1 + OWN_LAYERS) + repos * m + BASE_LAYERS);
    for (let r = 0; r < repos; r++) {
      const name = `gc/app-${String(r).padStart(5, '0')}`;
      const blobs: ModelBlob[] = [];
      const manifests: ModelManifest[] = [];
      const pool: ModelBlob[] = [];
      for (let i = 0; i < m; i++) {
        pool.push({
          digest: fakeDigest(`${this.seed}/${r}/shared/${i}`),
          size: 1_000_000 + i * 7919,
          reviewAfter: null,
        });
      }
      const poolRefs = pool.map(() => ({ any: false, kept: false }));
      for (let j = 0; j < m; j++) {
        const garbage = rng() < GARBAGE_FRACTION;
        const taggedDue = !garbage && rng() < TAGGED_DUE_FRACTION;
        const config: ModelBlob = {
          digest: fakeDigest(`${this.seed}/${r}/${j}/config`),
          size: 1_000 + ((j * 37) % 7_000),
          reviewAfter: null,
        };
        const own = Array.from({ length: OWN_LAYERS }, (_, k) => ({
          digest: fakeDigest(`${this.seed}/${r}/${j}/layer/${k}`),
          size: 10_000 + Math.floor(rng() * 60_000_000),
          reviewAfter: null,
        }));
        blobs.push(config, ...own);
        const picked = new Set<number>();
        while (picked.size < SHARED_PER_MANIFEST) picked.add(Math.floor(rng() * m));
        const baseIndex = Math.floor(rng() * BASE_LAYERS);
        const baseRef = this.baseRefs[baseIndex] as { any: boolean; kept: boolean };
        baseRef.any = true;
        if (!garbage) baseRef.kept = true;
        for (const s of picked) {
          const ref = poolRefs[s] as { any: boolean; kept: boolean };
          ref.any = true;
          if (!garbage) ref.kept = true;
        }
        const layers = [
          this.base[baseIndex] as ModelBlob,
          ...[...picked].map((s) => pool[s] as ModelBlob),
          ...own,
        ];
        const payload = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
            layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
          }),
        );
        const digest = `sha256:${createHash('sha256').update(payload).digest('hex')}`;
        manifests.push({
          digest,
          payload,
          tag: garbage ? null : `v${j}`,
          reviewAfter: garbage
            ? this.now - HOUR - Math.floor(rng() * DAY)
            : taggedDue
              ? this.now - 2 * HOUR
              : null,
          garbage,
          blobs: [config.digest, ...layers.map((l) => l.digest)],
        });
        e.manifests++;
        e.references += 1 + layers.length;
        if (garbage) {
          e.garbageManifests++;
          e.garbageReferences += 1 + layers.length;
          // Its config and own layers are referenced by nothing else.
          e.garbageBlobs += 1 + OWN_LAYERS;
          e.garbageRepositoryBlobs += 1 + OWN_LAYERS;
        } else {
          e.tags++;
          if (taggedDue) e.taggedDue++;
        }
      }
      for (let s = 0; s < m; s++) {
        const ref = poolRefs[s] as { any: boolean; kept: boolean };
        const blob = pool[s] as ModelBlob;
        if (!ref.any) blob.reviewAfter = this.now - HOUR; // unreferenced and due
        if (!ref.kept) {
          e.garbageBlobs++;
          e.garbageRepositoryBlobs++;
        }
        blobs.push(blob);
      }
      // This repository's share of the unreferenced blobs: alternately due and within the grace period.
      const share = Math.floor(unreferencedTotal / repos) + (r < unreferencedTotal % repos ? 1 : 0);
      for (let u = 0; u < share; u++) {
        const due = u % 2 === 0;
        blobs.push({
          digest: fakeDigest(`${this.seed}/${r}/unreferenced/${u}`),
          size: 5_000 + u * 131,
          reviewAfter: due ? this.now - HOUR : this.now + 20 * HOUR,
        });
        if (due) {
          e.garbageBlobs++;
          e.garbageRepositoryBlobs++;
        } else e.unreferencedInGrace++;
      }
      e.repositories++;
      e.blobs += blobs.length;
      e.repositoryBlobs += blobs.length + BASE_LAYERS;
      yield { id: r + 1, name, manifests, blobs };
    }
    for (const [i, ref] of this.baseRefs.entries()) {
      const blob = this.base[i] as ModelBlob;
      if (!ref.any) blob.reviewAfter = this.now - HOUR;
      if (!ref.kept) {
        e.garbageBlobs++;
        e.garbageRepositoryBlobs += repos;
      }
    }
  }
}

/** When the content was created (a month before `now`). */
export function createdAt(model: GcModel): number {
  return model.now - 30 * DAY;
}

/**
 * Writes the model into a new Berth metadata database `file` (migrated by Berth itself first), with one
 * transaction per 20 repositories. With `blobRoot`, also writes each blob as an empty file at its storage key
 * (`<blobRoot>/blobs/sha256/<xx>/<hex>`); neither collector reads blob content.
 */
export async function writeBerthDatabase(model: GcModel, file: string, blobRoot?: string): Promise<void> {
  const store = createSqliteStore(file);
  await store.migrate();
  await store.close();
  const db = new BetterSqlite3(file);
  try {
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -524288');
    const created = createdAt(model);
    const insertRepo = db.prepare('insert into repositories (id, name, created_at) values (?, ?, ?)');
    const insertBlob = db.prepare(
      'insert into blobs (digest, size, created_at, review_after, deleting_at) values (?, ?, ?, ?, null)',
    );
    const insertLink = db.prepare(
      'insert into repository_blobs (repository_id, digest, created_at) values (?, ?, ?)',
    );
    const insertManifest = db.prepare(
      `insert into manifests (repository_id, digest, media_type, payload, size, subject_digest, artifact_type,
         annotations, created_at, review_after) values (?, ?, ?, ?, ?, null, null, null, ?, ?)`,
    );
    const insertRef = db.prepare(
      "insert into manifest_references (manifest_id, digest, kind) values (?, ?, 'blob')",
    );
    const insertTag = db.prepare(
      'insert into tags (repository_id, name, manifest_id, updated_at) values (?, ?, ?, ?)',
    );
    const writeRepos = db.transaction((repos: ModelRepo[]) => {
      for (const repo of repos) {
        insertRepo.run(repo.id, repo.name, created);
        for (const b of repo.blobs) {
          insertBlob.run(b.digest, b.size, created, b.reviewAfter);
          insertLink.run(repo.id, b.digest, created);
        }
        for (const b of model.base) insertLink.run(repo.id, b.digest, created);
        for (const m of repo.manifests) {
          const id = Number(
            insertManifest.run(
              repo.id,
              m.digest,
              OCI_MANIFEST,
              m.payload,
              m.payload.length,
              created,
              m.reviewAfter,
            ).lastInsertRowid,
          );
          for (const d of new Set(m.blobs)) insertRef.run(id, d);
          if (m.tag !== null) insertTag.run(repo.id, m.tag, id, created);
        }
      }
    });
    // Base layers first (repository_blobs references blobs).
    db.transaction(() => {
      for (const b of model.base) insertBlob.run(b.digest, b.size, created, b.reviewAfter);
    })();
    let batch: ModelRepo[] = [];
    const files: string[] = [];
    const flushFiles = (): void => {
      if (!blobRoot) return;
      for (const digest of files) writeBlobFile(path.join(blobRoot, 'blobs', 'sha256'), digest, false);
      files.length = 0;
    };
    for (const repo of model.repos()) {
      batch.push(repo);
      if (blobRoot) for (const b of repo.blobs) files.push(b.digest);
      if (batch.length >= 20) {
        writeRepos(batch);
        flushFiles();
        batch = [];
      }
    }
    if (batch.length > 0) writeRepos(batch);
    flushFiles();
    // Base layers whose review time the generator only knew at the end.
    const update = db.prepare('update blobs set review_after = ? where digest = ?');
    for (const b of model.base) if (b.reviewAfter !== null) update.run(b.reviewAfter, b.digest);
    if (blobRoot)
      for (const b of model.base) writeBlobFile(path.join(blobRoot, 'blobs', 'sha256'), b.digest, false);
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}

/** An empty blob file: `<dir>/<xx>/<hex>` (Berth) or `<dir>/<xx>/<hex>/data` (Distribution). */
function writeBlobFile(
  dir: string,
  digest: string,
  distribution: boolean,
  content: Buffer | string = '',
): void {
  const hex = digest.slice('sha256:'.length);
  const parent = distribution ? path.join(dir, hex.slice(0, 2), hex) : path.join(dir, hex.slice(0, 2));
  mkdirSync(parent, { recursive: true });
  writeFileSync(path.join(parent, distribution ? 'data' : hex), content);
}

function writeLink(file: string, digest: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, digest);
}

/**
 * Writes the model as Distribution 2.8's filesystem layout under `root` (its `storage.filesystem.rootdirectory`):
 * `docker/registry/v2/blobs/sha256/<xx>/<hex>/data` for every blob (empty; manifests hold their payload),
 * `repositories/<name>/_layers/sha256/<hex>/link` for each blob linked in the repository,
 * `_manifests/revisions/sha256/<hex>/link` per manifest and `_manifests/tags/<tag>/current/link` plus
 * `_manifests/tags/<tag>/index/sha256/<hex>/link` per tag. Links hold the digest.
 */
export function writeDistributionLayout(model: GcModel, root: string): void {
  const v2 = path.join(root, 'docker', 'registry', 'v2');
  const blobsDir = path.join(v2, 'blobs', 'sha256');
  const hexOf = (d: string): string => d.slice('sha256:'.length);
  for (const b of model.base) writeBlobFile(blobsDir, b.digest, true);
  for (const repo of model.repos()) {
    const repoDir = path.join(v2, 'repositories', ...repo.name.split('/'));
    for (const b of repo.blobs) writeBlobFile(blobsDir, b.digest, true);
    for (const b of [...repo.blobs, ...model.base]) {
      writeLink(path.join(repoDir, '_layers', 'sha256', hexOf(b.digest), 'link'), b.digest);
    }
    for (const m of repo.manifests) {
      writeBlobFile(blobsDir, m.digest, true, m.payload);
      writeLink(path.join(repoDir, '_manifests', 'revisions', 'sha256', hexOf(m.digest), 'link'), m.digest);
      if (m.tag !== null) {
        const tagDir = path.join(repoDir, '_manifests', 'tags', m.tag);
        writeLink(path.join(tagDir, 'current', 'link'), m.digest);
        writeLink(path.join(tagDir, 'index', 'sha256', hexOf(m.digest), 'link'), m.digest);
      }
    }
  }
}
