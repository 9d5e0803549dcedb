/**
 * The scan service with the real scan store, the real vulnerability database (the OSV fixtures imported) and a
 * real registry on the file system, on SQLite and PostgreSQL. The image scanned holds this machine's own dpkg
 * status and os-release (Debian 12) and an npm package: its report lists this machine's packages, the unfixed
 * zlib advisory for every package built from zlib, and not the glibc DSA fixed long before the glibc installed
 * here. Also: the union report of an index, artifacts and missing layers, what the event subscriber enqueues,
 * rematching after an import without reading layers (also on the pull path), and the pull decision under every
 * policy setting.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { DomainEvent } from '../../src/events/event.ts';
import type { EnqueueOptions, JobQueue } from '../../src/jobs/job.ts';
import type { PackageKey } from '../../src/metadata/scan-store.ts';
import type { ManifestRecord } from '../../src/metadata/store.ts';
import type { VulnDbStore } from '../../src/metadata/vulndb-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { parseReference } from '../../src/oci/reference.ts';
import { Registry } from '../../src/registry/registry.ts';
import type { ScanReport } from '../../src/scanning/report.ts';
import { REMATCH_QUEUE, SCAN_QUEUE, ScanService, VulnerableImageError } from '../../src/scanning/service.ts';
import { importDirectory, importRecords } from '../../src/scanning/vulndb/import.ts';
import { findVulnerabilities } from '../../src/scanning/vulndb/match.ts';
import { FilesystemDriver } from '../../src/storage/drivers/filesystem.ts';
import { blobKey } from '../../src/storage/paths.ts';
import { blobOf, type Blob } from '../helpers/cosign-signature.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';
import { buildLayer } from '../helpers/tar.ts';

const run = promisify(execFile);
const FIXTURES = fileURLToPath(new URL('../fixtures/osv/', import.meta.url));
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const GZIP_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const never = () => Promise.resolve(false);
const always = () => Promise.resolve(true);

const ZLIB_ID = 'DEBIAN-CVE-2023-45853';
const GLIBC_DSA = 'DSA-5514-1';
const MINIMIST_ID = 'GHSA-xvch-5gv4-984h';
const MINIMIST_ALIAS = 'CVE-2021-44906';
const SEMVER_ID = 'GHSA-c2qf-rxjj-qqgw';
const HIGH_ID = 'DEBIAN-TEST-HIGH-BASH';

/** What this machine's dpkg database holds. */
interface Machine {
  /** `name version` of every installed package. */
  packages: string[];
  /** Installed packages built from the zlib source package, with their versions. */
  zlib: { name: string; version: string }[];
  libc6: string;
  bash: { sourceName: string; sourceVersion: string };
}

let machine: Machine;
let work: string;
/** Layer with this machine's os-release and dpkg status. */
let debianLayer: Blob;
/** Layer with minimist's published package.json, its version set to 1.2.5 (vulnerable to GHSA-xvch-5gv4-984h). */
let minimistLayer: Blob;
/** Layer with semver's published package.json, its version set to 7.5.1 (vulnerable to GHSA-c2qf-rxjj-qqgw). */
let semverLayer: Blob;

async function npmManifest(name: string, version: string): Promise<string> {
  const json = JSON.parse(
    await readFile(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8'),
  ) as Record<string, unknown>;
  return JSON.stringify({ ...json, version }, null, 2);
}

before(async () => {
  const query = async (format: string, ...names: string[]): Promise<string[]> => {
    const { stdout } = await run('dpkg-query', ['-W', `-f=${format}\\n`, ...names], { maxBuffer: 16 << 20 });
    return stdout.split('\n').filter(Boolean);
  };
  const all = await query('${Package} ${Version} ${source:Package}');
  const [bash] = await query('${source:Package} ${source:Version}', 'bash');
  machine = {
    packages: all.map((line) => line.split(' ').slice(0, 2).join(' ')).sort(),
    zlib: all
      .map((line) => line.split(' '))
      .filter(([, , source]) => source === 'zlib')
      .map(([name, version]) => ({ name: name!, version: version! })),
    libc6: (await query('${Version}', 'libc6'))[0]!,
    bash: { sourceName: bash!.split(' ')[0]!, sourceVersion: bash!.split(' ')[1]! },
  };
  work = await mkdtemp(join(tmpdir(), 'berth-scan-'));
  const layer = async (spec: Parameters<typeof buildLayer>[1]): Promise<Blob> =>
    blobOf(await readFile(await buildLayer(work, spec, { compression: 'gzip' })));
  debianLayer = await layer([
    ['etc/os-release', await readFile('/etc/os-release')],
    ['var/lib/dpkg/status', await readFile('/var/lib/dpkg/status')],
  ]);
  minimistLayer = await layer([
    ['app/node_modules/minimist/package.json', await npmManifest('minimist', '1.2.5')],
  ]);
  semverLayer = await layer([['srv/node_modules/semver/package.json', await npmManifest('semver', '7.5.1')]]);
});
after(() => rm(work, { recursive: true, force: true }));

/** A job queue recording what is enqueued, dropping duplicate dedupe keys as the real one does. */
class RecordingQueue implements JobQueue {
  readonly jobs: { queue: string; payload: unknown; options?: EnqueueOptions }[] = [];
  private readonly keys = new Set<string>();
  enqueue(queue: string, payload: unknown, options?: EnqueueOptions): Promise<number | null> {
    const key = options?.dedupeKey === undefined ? undefined : `${queue}\u0000${options.dedupeKey}`;
    if (key !== undefined && this.keys.has(key)) return Promise.resolve(null);
    if (key !== undefined) this.keys.add(key);
    this.jobs.push({ queue, payload, ...(options !== undefined ? { options } : {}) });
    return Promise.resolve(this.jobs.length);
  }
  async enqueueMany(
    queue: string,
    jobs: readonly { readonly payload: unknown; readonly options?: EnqueueOptions }[],
  ): Promise<number> {
    let n = 0;
    for (const job of jobs) if ((await this.enqueue(queue, job.payload, job.options)) !== null) n++;
    return n;
  }
  of(queue: string): unknown[] {
    return this.jobs.filter((job) => job.queue === queue).map((job) => job.payload);
  }
}

/** A hand-written Debian 12 record (published nowhere) against the source of bash, fixed after the installed one. */
function highBashRecord(): Record<string, unknown> {
  return {
    id: HIGH_ID,
    modified: '2026-01-01T00:00:00Z',
    summary: 'hand-written Debian 12 record for the rematch tests',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N' }],
    affected: [
      {
        package: { ecosystem: 'Debian:12', name: machine.bash.sourceName },
        ranges: [
          {
            type: 'ECOSYSTEM',
            events: [{ introduced: '0' }, { fixed: `${machine.bash.sourceVersion}+deb12u99` }],
          },
        ],
      },
    ],
  };
}

const ids = (report: ScanReport | null | undefined): string[] =>
  [...new Set((report?.findings ?? []).map((f) => f.id))].sort();

for (const kind of await testDatabases()) {
  describe(`scan service on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let dir: string;
    let storage: FilesystemDriver;
    let registry: Registry;
    let vulnDb: VulnDbStore;
    let queue: RecordingQueue;
    let scanning: ScanService;
    let clock: number;
    let reads: number;

    beforeEach(async () => {
      db = await kind.create();
      dir = await mkdtemp(join(tmpdir(), 'berth-scan-store-'));
      storage = new FilesystemDriver({ root: dir });
      // Counts layer reads, to show a rematch reads none.
      reads = 0;
      const read = storage.read.bind(storage);
      storage.read = (...args: Parameters<typeof read>) => {
        reads++;
        return read(...args);
      };
      vulnDb = db.store.vulnDbStore();
      const imported = await importDirectory(vulnDb, FIXTURES);
      assert.equal(imported.invalid, 0);
      clock = Date.now();
      queue = new RecordingQueue();
      scanning = new ScanService({
        store: db.store.scanStore(),
        metadata: db.store,
        storage,
        matcher: {
          revision: () => vulnDb.revision(),
          match: (os, packages) => findVulnerabilities(vulnDb, os, packages),
        },
        jobs: queue,
        now: () => clock,
        version: '1.2.3',
      });
      registry = new Registry({
        storage,
        metadata: db.store,
        options: { deletes: true, maxManifestSize: 4 * 1024 * 1024, uploadPurgeAfter: 3_600_000 },
      });
    });
    afterEach(async () => {
      await db.cleanup();
      await rm(dir, { recursive: true, force: true });
    });

    async function putBlob(repository: string, blob: Blob): Promise<void> {
      await storage.put(blobKey(blob.digest), blob.bytes);
      await db.store.linkBlob(repository, blob.digest as Digest, blob.size);
    }

    async function putManifest(repository: string, body: object, tag: string): Promise<ManifestRecord> {
      const manifest = blobOf(Buffer.from(JSON.stringify(body)));
      await registry.manifests.put({
        repository,
        reference: parseReference(tag, true),
        body: manifest.bytes,
        contentType: (body as { mediaType: string }).mediaType,
      });
      return registry.manifests.get(repository, parseReference(tag, false));
    }

    /** Pushes an image of `layers` for `architecture`, tagged `tag`. */
    async function pushImage(
      repository: string,
      tag: string,
      layers: Blob[],
      architecture = 'amd64',
    ): Promise<ManifestRecord> {
      const config = blobOf(Buffer.from(JSON.stringify({ architecture, os: 'linux', tag })));
      await putBlob(repository, config);
      for (const layer of layers) await putBlob(repository, layer);
      return putManifest(
        repository,
        {
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
          layers: layers.map((l) => ({ mediaType: GZIP_LAYER, digest: l.digest, size: l.size })),
        },
        tag,
      );
    }

    const pushApp = (repository = 'team/app', tag = 'v1') =>
      pushImage(repository, tag, [debianLayer, minimistLayer]);

    it('scans an image: this machine’s packages, the unfixed zlib finding, no finding for the fixed glibc', async () => {
      const image = await pushApp();
      const scan = await scanning.scanNow('team/app', image.digest);
      assert.equal(scan?.status, 'done');
      assert.equal(scan?.scanner, 'berth');
      assert.equal(scan?.dbRevision, await vulnDb.revision());
      assert.ok(scan.dbRevision > 0);
      const report = scan.report!;
      assert.deepEqual(report.scanner, { name: 'berth', vendor: 'Berth', version: '1.2.3' });
      assert.equal(report.os?.id, 'debian');
      assert.equal(report.os?.versionId, '12');

      const debian = report.packages
        .filter((p) => p.ecosystem === 'Debian')
        .map((p) => `${p.name} ${p.version}`)
        .sort();
      assert.deepEqual(debian, machine.packages, 'exactly the packages dpkg-query reports');
      const npm = report.packages.filter((p) => p.ecosystem === 'npm');
      assert.deepEqual(
        npm.map((p) => [p.name, p.version]),
        [['minimist', '1.2.5']],
      );

      // One zlib finding per package built from zlib, unfixed, critical from its CVSS 3.1 vector (9.8).
      assert.ok(machine.zlib.length > 0, 'zlib1g is installed here');
      const zlib = report.findings.filter((f) => f.id === ZLIB_ID);
      assert.deepEqual(
        zlib.map((f) => [f.package.name, f.package.version]).sort(),
        machine.zlib.map((p) => [p.name, p.version]).sort(),
      );
      for (const f of zlib) {
        assert.equal(f.fixedVersion, null);
        assert.equal(f.severity, 'critical');
        assert.equal(f.score, 9.8);
        assert.equal(f.package.ecosystem, 'Debian');
      }
      // glibc 2.36-9+deb12u3 fixed DSA-5514-1; this machine has a later one.
      assert.ok(!machine.libc6.startsWith('2.36-9+deb12u3'));
      const libc = report.packages.find((p) => p.ecosystem === 'Debian' && p.name === 'libc6');
      assert.equal(libc?.sourceName, 'glibc', 'the package the DSA names is in the inventory');
      assert.notEqual(await vulnDb.get(GLIBC_DSA), null, 'the DSA was imported');
      assert.ok(!report.findings.some((f) => f.id === GLIBC_DSA || f.id === 'CVE-2023-4911'));

      const minimist = report.findings.filter((f) => f.id === MINIMIST_ID);
      assert.deepEqual(
        minimist.map((f) => [f.package.name, f.package.version, f.fixedVersion, f.severity]),
        [['minimist', '1.2.5', '1.2.6', 'critical']],
      );
      assert.deepEqual(minimist[0]?.aliases, [MINIMIST_ALIAS]);
      assert.deepEqual(ids(report), [ZLIB_ID, MINIMIST_ID].sort());
      assert.equal(scan.counts?.critical, report.findings.length);
    });

    it('scans an index into the union of its platforms', async () => {
      const amd64 = await pushImage('team/multi', 'amd64', [debianLayer, minimistLayer], 'amd64');
      const arm64 = await pushImage('team/multi', 'arm64', [semverLayer], 'arm64');
      const index = await putManifest(
        'team/multi',
        {
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: [amd64, arm64].map((m, i) => ({
            mediaType: OCI_MANIFEST,
            digest: m.digest,
            size: m.payload.length,
            platform: { os: 'linux', architecture: i === 0 ? 'amd64' : 'arm64' },
          })),
        },
        'v1',
      );
      const scan = await scanning.scanNow('team/multi', index.digest);
      assert.equal(scan?.status, 'done');
      assert.deepEqual(ids(scan?.report), [ZLIB_ID, MINIMIST_ID, SEMVER_ID].sort());
      const semver = scan?.report?.findings.find((f) => f.id === SEMVER_ID);
      assert.deepEqual([semver?.package.version, semver?.fixedVersion], ['7.5.1', '7.5.2']);
      assert.equal(scan?.report?.os?.id, 'debian');
      const npm = scan!.report!.packages.filter((p) => p.ecosystem === 'npm').map((p) => p.name);
      assert.deepEqual(npm.sort(), ['minimist', 'semver']);
      // The children were scanned on the way and have their own reports.
      assert.deepEqual(ids((await scanning.scanOf(arm64.digest))?.report), [SEMVER_ID]);
      assert.deepEqual(ids((await scanning.scanOf(amd64.digest))?.report), [ZLIB_ID, MINIMIST_ID].sort());
    });

    it('marks an artifact unsupported and an image with a missing layer failed', async () => {
      const config = blobOf(Buffer.from('{}'));
      const data = blobOf(Buffer.from('some data'));
      await putBlob('team/art', config);
      await putBlob('team/art', data);
      const artifact = await putManifest(
        'team/art',
        {
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          artifactType: 'application/vnd.example.thing.v1',
          config: {
            mediaType: 'application/vnd.oci.empty.v1+json',
            digest: config.digest,
            size: config.size,
          },
          layers: [{ mediaType: 'application/vnd.example.data.v1', digest: data.digest, size: data.size }],
        },
        'thing',
      );
      const unsupported = await scanning.scanNow('team/art', artifact.digest);
      assert.equal(unsupported?.status, 'unsupported');
      assert.equal(unsupported?.report, null);
      assert.match(unsupported?.error ?? '', /not an image/);

      const image = await pushApp('team/broken');
      assert.equal(await storage.delete(blobKey(debianLayer.digest)), true);
      const failed = await scanning.scanNow('team/broken', image.digest);
      assert.equal(failed?.status, 'failed');
      assert.equal(failed?.report, null);
      assert.ok(failed?.error?.includes(debianLayer.digest), failed?.error ?? '');
      assert.match(failed?.error ?? '', /cannot be read/);

      // A manifest that is not there: nothing stored.
      assert.equal(await scanning.scanNow('team/broken', `sha256:${'0'.repeat(64)}` as Digest), null);
    });

    it('enqueues a scan only for images pushed into a namespace that scans on push', async () => {
      await scanning.setPolicy('quiet', { scanOnPush: false }, 'root');
      const image = await pushApp('team/app');
      const quiet = await pushApp('quiet/app', 'q1');
      const event = (type: DomainEvent['type'], repository: string, digest?: Digest): DomainEvent => ({
        id: `${type}-${repository}-${digest ?? ''}`,
        type,
        occurredAt: new Date(clock).toISOString(),
        target: { repository, ...(digest !== undefined ? { digest } : {}) },
        actor: null,
        request: null,
      });
      await scanning.subscriber.handle([
        event('manifest.pushed', 'team/app', image.digest),
        event('manifest.pushed', 'quiet/app', quiet.digest),
        event('manifest.deleted', 'team/app', image.digest),
        event('manifest.pulled', 'team/app', image.digest),
        event('manifest.pushed', 'team/app'),
        // Delivered twice (at least once): one job.
        event('manifest.pushed', 'team/app', image.digest),
      ]);
      assert.deepEqual(queue.of(SCAN_QUEUE), [{ repository: 'team/app', digest: image.digest }]);
      assert.equal((await scanning.scanOf(image.digest))?.status, 'queued');
      assert.equal(await scanning.scanOf(quiet.digest), null);

      // The registered handler scans what was enqueued.
      const handlers = new Map<string, (payload: never, context: { signal: AbortSignal }) => Promise<void>>();
      scanning.register({ register: (name, handler) => handlers.set(name, handler as never) });
      assert.deepEqual([...handlers.keys()].sort(), [REMATCH_QUEUE, SCAN_QUEUE].sort());
      await handlers.get(SCAN_QUEUE)!(queue.of(SCAN_QUEUE)[0] as never, {
        signal: new AbortController().signal,
      });
      assert.equal((await scanning.scanOf(image.digest))?.status, 'done');
    });

    it('rematches stored reports after an import, without reading a layer', async () => {
      const image = await pushApp();
      const other = await pushImage('team/other', 'v1', [semverLayer]);
      const first = await scanning.scanNow('team/app', image.digest);
      await scanning.scanNow('team/other', other.digest);
      assert.ok(!ids(first?.report).includes(HIGH_ID));
      const before = first!.dbRevision;

      // The layers are gone: a rematch cannot read them.
      for (const layer of [debianLayer, minimistLayer, semverLayer])
        await storage.delete(blobKey(layer.digest));
      reads = 0;

      const summary = await importRecords(vulnDb, [highBashRecord()]);
      assert.equal(summary.added, 1);
      assert.ok(summary.revision > before);
      const bashKey: PackageKey = { ecosystem: 'Debian', name: machine.bash.sourceName };
      assert.ok(summary.changed.some((k) => k.ecosystem === bashKey.ecosystem && k.name === bashKey.name));
      await scanning.databaseChanged(summary.revision, summary.changed);
      const jobs = queue.of(REMATCH_QUEUE) as { revision: number; keys: PackageKey[] }[];
      assert.deepEqual(jobs, [{ revision: summary.revision, keys: summary.changed }]);

      // Only the image holding bash is rematched.
      assert.equal(await scanning.rematch(jobs[0]!.keys), 1);
      assert.equal(reads, 0, 'no layer was read');
      const stored = await db.store.scanStore().getScan(image.digest);
      assert.equal(stored?.status, 'done');
      assert.equal(stored?.dbRevision, summary.revision);
      assert.deepEqual(ids(stored?.report), [ZLIB_ID, HIGH_ID, MINIMIST_ID].sort());
      const high = stored!.report!.findings.find((f) => f.id === HIGH_ID)!;
      assert.equal(high.package.name, 'bash');
      assert.equal(high.severity, 'high');
      assert.equal(high.fixedVersion, `${machine.bash.sourceVersion}+deb12u99`);
      assert.equal(stored?.counts?.high, 1);
      assert.deepEqual(stored?.report?.packages, first?.report?.packages);
      // The other image does not hold bash: untouched.
      assert.equal((await db.store.scanStore().getScan(other.digest))?.dbRevision, before);

      // Nothing changed: an empty import enqueues nothing.
      await scanning.databaseChanged(summary.revision, []);
      assert.equal(queue.of(REMATCH_QUEUE).length, 1);
      // A full rematch (keys null) brings the other one to the revision too.
      assert.equal(await scanning.rematch(null), 2);
      assert.equal((await db.store.scanStore().getScan(other.digest))?.dbRevision, summary.revision);
      assert.equal(reads, 0);
    });

    it('rematches a stale report on the pull path before deciding', async () => {
      const image = await pushApp();
      await scanning.scanNow('team/app', image.digest);
      await scanning.setPolicy(
        'team',
        { mode: 'enforce', severity: 'high', allowlist: [{ id: ZLIB_ID }, { id: MINIMIST_ID }] },
        null,
      );
      assert.deepEqual(await scanning.checkPull(image, never), { outcome: 'pass', reason: 'clean' });

      // Another instance imports (no databaseChanged here): once the cached revision expires, the pull sees it.
      for (const layer of [debianLayer, minimistLayer]) await storage.delete(blobKey(layer.digest));
      const summary = await importRecords(vulnDb, [highBashRecord()]);
      clock += 60_000;
      await assert.rejects(scanning.checkPull(image, never), (e: unknown) => {
        assert.ok(e instanceof VulnerableImageError);
        assert.match(e.message, new RegExp(HIGH_ID));
        return true;
      });
      const stored = await db.store.scanStore().getScan(image.digest);
      assert.equal(stored?.dbRevision, summary.revision);
      assert.ok(ids(stored?.report).includes(HIGH_ID));
    });

    it('keeps an external scanner’s report as it is when the namespace goes back to the built-in scanner', async () => {
      // The external scanner as the service sees it (its Harbor adapter is tested in harbor-scanner.test.ts):
      // findings only, no inventory, as Harbor's reports are.
      const externalReport: ScanReport = {
        scanner: { name: 'trivy', vendor: 'Aqua Security', version: '0.50.0' },
        os: null,
        packages: [],
        findings: [
          {
            id: 'CVE-2023-4911',
            aliases: [],
            package: { ecosystem: 'debian', name: 'libc6', version: '2.36-9+deb12u1', purl: null },
            fixedVersion: '2.36-9+deb12u3',
            severity: 'critical',
            score: null,
            summary: null,
            links: [],
          },
        ],
      };
      const service = new ScanService({
        store: db.store.scanStore(),
        metadata: db.store,
        storage,
        matcher: {
          revision: () => vulnDb.revision(),
          match: (os, packages) => findVulnerabilities(vulnDb, os, packages),
        },
        external: { scan: () => Promise.resolve(externalReport) },
        now: () => clock,
      });
      await db.store.scanStore().putScanner({
        name: 'trivy',
        url: 'http://trivy.invalid',
        authorization: null,
        createdAt: new Date(clock),
      });
      const image = await pushImage('team/ext', 'v1', [semverLayer]);
      await service.setPolicy('team', { mode: 'enforce', scanner: 'trivy' }, null);
      const external = await service.scanNow('team/ext', image.digest);
      assert.equal(external?.scanner, 'trivy');
      assert.deepEqual(ids(external?.report), ['CVE-2023-4911']);
      await assert.rejects(service.checkPull(image, never), VulnerableImageError);

      // Back to the built-in scanner, whose scan fails (the layer is gone): the external report still stands.
      await service.setPolicy('team', { mode: 'enforce' }, null);
      await storage.delete(blobKey(semverLayer.digest));
      const failed = await service.scanNow('team/ext', image.digest);
      assert.equal(failed?.status, 'failed');
      const read = await service.scanOf(image.digest);
      assert.equal(read?.status, 'failed');
      assert.deepEqual(read?.report, externalReport, 'not matched again against the built-in database');
      await assert.rejects(service.checkPull(image, never), (e: unknown) => {
        assert.ok(e instanceof VulnerableImageError);
        assert.match(e.message, /CVE-2023-4911/);
        return true;
      });
      assert.equal(await service.rematch(null), 0);
      assert.deepEqual((await service.scanOf(image.digest))?.report, externalReport);
    });

    describe('the pull check', () => {
      let image: ManifestRecord;
      beforeEach(async () => {
        image = await pushApp();
        await scanning.scanNow('team/app', image.digest);
      });
      const setPolicy = (document: Record<string, unknown>) => scanning.setPolicy('team', document, 'owner');

      async function refusal(bypass = never): Promise<VulnerableImageError> {
        try {
          await scanning.checkPull(image, bypass);
        } catch (e) {
          assert.ok(e instanceof VulnerableImageError, String(e));
          return e;
        }
        assert.fail('the pull passed');
      }

      it('passes under the default policy (off)', async () => {
        assert.deepEqual(await scanning.checkPull(image, never), { outcome: 'pass', reason: 'off' });
      });

      it('warns under warn and refuses under enforce with 412 DENIED naming the ids, unless bypassed', async () => {
        await setPolicy({ mode: 'warn' });
        const warned = await scanning.checkPull(image, never);
        assert.equal(warned.outcome, 'warn');
        assert.ok(warned.outcome === 'warn' && warned.message.includes(ZLIB_ID));
        assert.ok(warned.outcome === 'warn' && warned.warning.startsWith('199 berth "'));

        await setPolicy({ mode: 'enforce' });
        const refused = await refusal();
        assert.equal(refused.status, 412);
        assert.equal(refused.code, 'DENIED');
        assert.match(refused.message, new RegExp(ZLIB_ID));
        assert.match(refused.message, new RegExp(MINIMIST_ID));
        assert.match(refused.message, /2 vulnerabilities of severity critical or higher/);
        assert.deepEqual(
          [...(refused.detail as { vulnerabilities: string[] }).vulnerabilities].sort(),
          [ZLIB_ID, MINIMIST_ID].sort(),
        );
        assert.deepEqual(await scanning.checkPull(image, always), { outcome: 'pass', reason: 'bypass' });
      });

      it('lets allowlisted findings through by id or alias, case-insensitively, until the entry expires', async () => {
        await setPolicy({
          mode: 'enforce',
          allowlist: [
            { id: ZLIB_ID.toLowerCase() },
            { id: MINIMIST_ALIAS.toLowerCase(), reason: 'not used' },
          ],
        });
        assert.deepEqual(await scanning.checkPull(image, never), { outcome: 'pass', reason: 'clean' });

        // Only the alias allowlisted: zlib blocks.
        await setPolicy({ mode: 'enforce', allowlist: [{ id: MINIMIST_ALIAS }] });
        const refused = await refusal();
        assert.deepEqual((refused.detail as { vulnerabilities: string[] }).vulnerabilities, [ZLIB_ID]);

        const soon = new Date(clock + 60_000).toISOString();
        await setPolicy({
          mode: 'enforce',
          allowlist: [{ id: ZLIB_ID, expiresAt: soon }, { id: MINIMIST_ID }],
        });
        assert.deepEqual(await scanning.checkPull(image, never), { outcome: 'pass', reason: 'clean' });
        clock += 120_000;
        const expired = await refusal();
        assert.deepEqual((expired.detail as { vulnerabilities: string[] }).vulnerabilities, [ZLIB_ID]);
      });

      it('ignores unfixed findings under fixableOnly', async () => {
        await setPolicy({ mode: 'enforce', fixableOnly: true });
        const refused = await refusal();
        // zlib has no fix: only minimist (fixed in 1.2.6) blocks.
        assert.deepEqual((refused.detail as { vulnerabilities: string[] }).vulnerabilities, [MINIMIST_ID]);
        await setPolicy({ mode: 'enforce', fixableOnly: true, allowlist: [{ id: MINIMIST_ID }] });
        assert.deepEqual(await scanning.checkPull(image, never), { outcome: 'pass', reason: 'clean' });
      });

      it('blocks at the severity threshold: a high finding passes critical and blocks high', async () => {
        const summary = await importRecords(vulnDb, [highBashRecord()]);
        await scanning.databaseChanged(summary.revision, summary.changed);
        const allowlist = [{ id: ZLIB_ID }, { id: MINIMIST_ID }];
        await setPolicy({ mode: 'enforce', severity: 'critical', allowlist });
        assert.deepEqual(await scanning.checkPull(image, never), { outcome: 'pass', reason: 'clean' });
        await setPolicy({ mode: 'enforce', severity: 'high', allowlist });
        const refused = await refusal();
        assert.deepEqual((refused.detail as { vulnerabilities: string[] }).vulnerabilities, [HIGH_ID]);
        assert.match(refused.message, /1 vulnerability of severity high or higher/);
      });

      it('refuses an unscanned image under requireScan and enqueues its scan', async () => {
        const unscanned = await pushImage('team/app', 'v2', [minimistLayer]);
        await setPolicy({ mode: 'enforce' });
        assert.deepEqual(await scanning.checkPull(unscanned, never), {
          outcome: 'pass',
          reason: 'not-scanned',
        });
        assert.deepEqual(queue.of(SCAN_QUEUE), [{ repository: 'team/app', digest: unscanned.digest }]);

        await setPolicy({ mode: 'enforce', requireScan: true });
        // Queued but not scanned yet: refused.
        assert.equal((await scanning.scanOf(unscanned.digest))?.status, 'queued');
        await assert.rejects(scanning.checkPull(unscanned, never), (e: unknown) => {
          assert.ok(e instanceof VulnerableImageError);
          assert.match(e.message, /has not been scanned yet/);
          assert.equal(e.reason, 'image not scanned');
          return true;
        });
        assert.deepEqual(await scanning.checkPull(unscanned, always), { outcome: 'pass', reason: 'bypass' });
        await setPolicy({ mode: 'warn', requireScan: true });
        const warned = await scanning.checkPull(unscanned, never);
        assert.equal(warned.outcome, 'warn');

        // Its scan failed: the refusal says why rather than "not scanned yet".
        await storage.delete(blobKey(minimistLayer.digest));
        assert.equal((await scanning.scanNow('team/app', unscanned.digest))?.status, 'failed');
        await setPolicy({ mode: 'enforce', requireScan: true });
        await assert.rejects(scanning.checkPull(unscanned, never), (e: unknown) => {
          assert.ok(e instanceof VulnerableImageError);
          assert.match(e.message, /could not be scanned \(layer sha256:[0-9a-f]{64} cannot be read/);
          return true;
        });
      });

      it('lets what is not an image pass whatever the policy', async () => {
        await setPolicy({ mode: 'enforce', requireScan: true, severity: 'low' });
        const config = blobOf(Buffer.from('{}'));
        await putBlob('team/app', config);
        const artifact = await putManifest(
          'team/app',
          {
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            artifactType: 'application/vnd.example.thing.v1',
            config: {
              mediaType: 'application/vnd.oci.empty.v1+json',
              digest: config.digest,
              size: config.size,
            },
            layers: [],
          },
          'thing',
        );
        assert.deepEqual(await scanning.checkPull(artifact, never), { outcome: 'pass', reason: 'not-image' });
      });
    });
  });
}
