/**
 * The scan store on SQLite and PostgreSQL: a digest's scan from queued to done to rescanned and failed (the report
 * kept while a rescan is pending, the error cleared), the package keys of a report replaced with it, the digests
 * holding packages and the reported digests (paged, in digest order), orphaned reports deleted while held ones
 * stay, and namespace policies and external scanners stored, listed and deleted.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { PackageKey, ScanStore } from '../../src/metadata/scan-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import type { Package } from '../../src/scanning/inventory/types.ts';
import { summarize, type Finding, type ScanReport } from '../../src/scanning/report.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

function digestOf(text: string): Digest {
  return `sha256:${createHash('sha256').update(text).digest('hex')}` as Digest;
}

const deb = (name: string, version: string, sourceName?: string): Package => ({
  ecosystem: 'Debian',
  name,
  version,
  ...(sourceName !== undefined ? { sourceName } : {}),
  purl: `pkg:deb/debian/${name}@${version}`,
  locations: ['var/lib/dpkg/status'],
});

function reportOf(packages: Package[], findings: Finding[] = []): ScanReport {
  return {
    scanner: { name: 'berth', vendor: 'Berth', version: '1.0.0' },
    os: { id: 'debian', versionId: '12', versionCodename: 'bookworm', idLike: [] },
    packages,
    findings,
  };
}

const zlibFinding: Finding = {
  id: 'DEBIAN-CVE-2023-45853',
  aliases: [],
  package: { ecosystem: 'Debian', name: 'zlib1g', version: '1:1.2.13.dfsg-1', purl: null },
  fixedVersion: null,
  severity: 'critical',
  score: 9.8,
  summary: 'MiniZip in zlib through 1.3 has an integer overflow',
  links: [],
};

const key = (ecosystem: string, name: string): PackageKey => ({ ecosystem, name });

for (const kind of await testDatabases()) {
  describe(`scan store on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: ScanStore;
    beforeEach(async () => {
      db = await kind.create();
      store = db.store.scanStore();
    });
    afterEach(() => db.cleanup());

    /** Stores a manifest in `repository` (so the digest is held) and returns its digest. */
    async function manifest(repository: string, nonce: string): Promise<Digest> {
      const payload = Buffer.from(JSON.stringify({ schemaVersion: 2, nonce }));
      const digest = digestOf(payload.toString());
      const result = await db.store.putManifest({
        repository,
        digest,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        payload,
        subject: null,
        artifactType: null,
        annotations: null,
        blobs: [],
        manifests: [],
        tags: [],
        sparse: true,
      });
      assert.equal(result.ok, true);
      return digest;
    }

    it('keeps a scan from queued to done, the report kept through a rescan and a failure', async () => {
      const digest = digestOf('image');
      assert.equal(await store.getScan(digest), null);

      await store.markPending(digest, 'queued', 'berth', new Date(1000));
      let scan = await store.getScan(digest);
      assert.equal(scan?.status, 'queued');
      assert.equal(scan?.scanner, 'berth');
      assert.equal(scan?.report, null);
      assert.equal(scan?.counts, null);
      assert.equal(scan?.scannedAt, null);
      assert.equal(scan?.updatedAt.getTime(), 1000);

      const report = reportOf([deb('zlib1g', '1:1.2.13.dfsg-1', 'zlib')], [zlibFinding]);
      await store.putReport(
        digest,
        'berth',
        report,
        summarize(report.findings),
        7,
        [key('Debian', 'zlib1g'), key('Debian', 'zlib')],
        new Date(2000),
      );
      scan = await store.getScan(digest);
      assert.equal(scan?.status, 'done');
      assert.equal(scan?.dbRevision, 7);
      assert.deepEqual(scan?.report, report);
      assert.equal(scan?.counts?.critical, 1);
      assert.equal(scan?.counts?.high, 0);
      assert.equal(scan?.scannedAt?.getTime(), 2000);
      assert.equal(scan?.error, null);

      // A rescan queued: the last report stays visible.
      await store.markPending(digest, 'scanning', 'berth', new Date(3000));
      scan = await store.getScan(digest);
      assert.equal(scan?.status, 'scanning');
      assert.deepEqual(scan?.report, report);
      assert.equal(scan?.dbRevision, 7);
      assert.equal(scan?.scannedAt?.getTime(), 2000);
      assert.equal(scan?.updatedAt.getTime(), 3000);

      // The rescan failed: the report stays, the error is recorded.
      await store.markEnded(digest, 'failed', 'layer sha256:x cannot be read', new Date(4000));
      scan = await store.getScan(digest);
      assert.equal(scan?.status, 'failed');
      assert.equal(scan?.error, 'layer sha256:x cannot be read');
      assert.deepEqual(scan?.report, report);

      // Queued again: the error is cleared.
      await store.markPending(digest, 'queued', 'berth', new Date(5000));
      scan = await store.getScan(digest);
      assert.equal(scan?.status, 'queued');
      assert.equal(scan?.error, null);
      assert.deepEqual(scan?.report, report);
    });

    it('records an unsupported manifest without a report', async () => {
      const digest = digestOf('artifact');
      await store.markEnded(digest, 'unsupported', 'a signature manifest is not an image', new Date(10));
      const scan = await store.getScan(digest);
      assert.equal(scan?.status, 'unsupported');
      assert.equal(scan?.report, null);
      assert.equal(scan?.error, 'a signature manifest is not an image');
    });

    it('replaces the package keys of a digest with its new report', async () => {
      const digest = digestOf('image');
      const counts = summarize([]);
      await store.putReport(
        digest,
        'berth',
        reportOf([]),
        counts,
        1,
        [key('Debian', 'zlib'), key('Debian', 'zlib'), key('npm', 'minimist')],
        new Date(1),
      );
      assert.deepEqual(await store.digestsWithPackages([key('Debian', 'zlib')], 10), [digest]);
      assert.deepEqual(await store.digestsWithPackages([key('npm', 'minimist')], 10), [digest]);

      await store.putReport(digest, 'berth', reportOf([]), counts, 2, [key('Debian', 'glibc')], new Date(2));
      assert.deepEqual(await store.digestsWithPackages([key('Debian', 'zlib')], 10), []);
      assert.deepEqual(await store.digestsWithPackages([key('npm', 'minimist')], 10), []);
      assert.deepEqual(await store.digestsWithPackages([key('Debian', 'glibc')], 10), [digest]);
      // Same name, other ecosystem: not a match.
      assert.deepEqual(await store.digestsWithPackages([key('Alpine', 'glibc')], 10), []);
      assert.deepEqual(await store.digestsWithPackages([], 10), []);
    });

    it('pages the digests holding any of several keys, in digest order', async () => {
      const counts = summarize([]);
      const zlib = Array.from({ length: 5 }, (_, i) => digestOf(`zlib-${i}`));
      const npm = Array.from({ length: 3 }, (_, i) => digestOf(`npm-${i}`));
      const neither = digestOf('neither');
      for (const d of zlib) {
        await store.putReport(d, 'berth', reportOf([]), counts, 1, [key('Debian', 'zlib')], new Date(1));
      }
      for (const d of npm) {
        await store.putReport(d, 'berth', reportOf([]), counts, 1, [key('npm', 'minimist')], new Date(1));
      }
      await store.putReport(neither, 'berth', reportOf([]), counts, 1, [key('Debian', 'bash')], new Date(1));
      // A queued digest (no report yet) has no package keys.
      await store.markPending(digestOf('queued'), 'queued', 'berth', new Date(1));

      const wanted = [...zlib, ...npm].sort();
      const keys = [key('Debian', 'zlib'), key('npm', 'minimist')];
      const pages: Digest[][] = [];
      let after: Digest | undefined;
      for (;;) {
        const page = await store.digestsWithPackages(keys, 3, after);
        pages.push(page);
        if (page.length < 3) break;
        after = page[page.length - 1];
      }
      assert.deepEqual(pages.flat(), wanted);
      assert.deepEqual(
        pages.map((p) => p.length),
        [3, 3, 2],
      );
      assert.deepEqual(await store.digestsWithPackages([key('Debian', 'zlib')], 100), [...zlib].sort());
    });

    it('lists the digests with a finished report of a scanner, paged', async () => {
      const counts = summarize([]);
      const builtin = Array.from({ length: 4 }, (_, i) => digestOf(`b-${i}`)).sort();
      for (const d of builtin) await store.putReport(d, 'berth', reportOf([]), counts, 1, [], new Date(1));
      await store.putReport(digestOf('t'), 'trivy', reportOf([]), counts, 0, [], new Date(1));
      await store.markPending(digestOf('q'), 'queued', 'berth', new Date(1));
      await store.markEnded(digestOf('f'), 'failed', 'boom', new Date(1));

      assert.deepEqual(await store.reportedDigests('berth', 100), builtin);
      const first = await store.reportedDigests('berth', 3);
      assert.deepEqual(first, builtin.slice(0, 3));
      assert.deepEqual(await store.reportedDigests('berth', 3, first[2]), builtin.slice(3));
      assert.deepEqual(await store.reportedDigests('trivy', 100), [digestOf('t')]);
    });

    it('deletes the scans of digests no repository holds, with their package keys', async () => {
      const counts = summarize([]);
      const held = await manifest('team/app', 'held');
      const gone = await manifest('team/app', 'gone');
      const never = digestOf('never stored');
      for (const d of [held, gone, never]) {
        await store.putReport(d, 'berth', reportOf([]), counts, 1, [key('Debian', 'zlib')], new Date(1));
      }
      assert.equal(await db.store.deleteManifest('team/app', gone), true);

      assert.equal(await store.deleteOrphans(), 2);
      assert.notEqual(await store.getScan(held), null);
      assert.equal(await store.getScan(gone), null);
      assert.equal(await store.getScan(never), null);
      assert.deepEqual(await store.digestsWithPackages([key('Debian', 'zlib')], 10), [held]);
      assert.equal(await store.deleteOrphans(), 0);
    });

    it('stores, lists and deletes namespace policies', async () => {
      assert.equal(await store.getPolicy('team'), null);
      const stored = await store.putPolicy('team', { mode: 'warn' }, 'alice', new Date(100));
      assert.deepEqual(stored, {
        namespace: 'team',
        document: { mode: 'warn' },
        updatedBy: 'alice',
        updatedAt: new Date(100),
      });
      await store.putPolicy('alpha', { mode: 'off' }, null, new Date(50));
      await store.putPolicy('team', { mode: 'enforce', severity: 'high' }, 'bob', new Date(200));
      const read = await store.getPolicy('team');
      assert.deepEqual(read?.document, { mode: 'enforce', severity: 'high' });
      assert.equal(read?.updatedBy, 'bob');
      assert.equal(read?.updatedAt.getTime(), 200);
      assert.deepEqual(
        (await store.listPolicies()).map((p) => [p.namespace, p.updatedBy]),
        [
          ['alpha', null],
          ['team', 'bob'],
        ],
      );
      assert.equal(await store.deletePolicy('team'), true);
      assert.equal(await store.deletePolicy('team'), false);
      assert.equal(await store.getPolicy('team'), null);
      assert.deepEqual(
        (await store.listPolicies()).map((p) => p.namespace),
        ['alpha'],
      );
    });

    it('stores, replaces, lists and deletes external scanners', async () => {
      assert.deepEqual(await store.listScanners(), []);
      assert.equal(await store.getScanner('trivy'), null);
      await store.putScanner({
        name: 'trivy',
        url: 'http://trivy:8080',
        authorization: null,
        createdAt: new Date(10),
      });
      await store.putScanner({
        name: 'clair',
        url: 'https://clair.example',
        authorization: 'sealed-value',
        createdAt: new Date(20),
      });
      assert.deepEqual(await store.getScanner('clair'), {
        name: 'clair',
        url: 'https://clair.example',
        authorization: 'sealed-value',
        createdAt: new Date(20),
      });
      await store.putScanner({
        name: 'trivy',
        url: 'http://trivy:9090',
        authorization: 'other',
        createdAt: new Date(30),
      });
      assert.deepEqual(
        (await store.listScanners()).map((s) => [s.name, s.url, s.authorization, s.createdAt.getTime()]),
        [
          ['clair', 'https://clair.example', 'sealed-value', 20],
          ['trivy', 'http://trivy:9090', 'other', 30],
        ],
      );
      assert.equal(await store.deleteScanner('trivy'), true);
      assert.equal(await store.deleteScanner('trivy'), false);
      assert.equal(await store.getScanner('trivy'), null);
      assert.deepEqual(
        (await store.listScanners()).map((s) => s.name),
        ['clair'],
      );
    });
  });
}
