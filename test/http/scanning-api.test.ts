/**
 * Vulnerability scanning through the admin API (`/api/v1/namespaces/{ns}/scanning/policy`,
 * `/api/v1/repositories/{name}/scan`, `.../sbom`, `/api/v1/scanners`) of the real app with basic auth, on SQLite
 * and PostgreSQL: who may (namespace admins for the policy, pullers for reports, pushers for scans, system
 * admins for scanners), validation naming the field, the report of an image holding this machine's dpkg status
 * with its filters and as CSV, SBOM documents, and what a pull meets under an enforcing policy. Every JSON
 * response is checked against the OpenAPI document.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { importDirectory } from '../../src/scanning/vulndb/import.ts';
import {
  assertError,
  createTestRegistry,
  descriptorOf,
  imageManifest,
  json,
  manifestBytes,
  OCI_CONFIG,
  OCI_LAYER,
  sha256,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';
import {
  addNamespace,
  addUser,
  basic,
  pushBlobAs,
  pushImageAs,
  putManifestAs,
  type Headers,
} from '../helpers/auth.ts';
import { startHarborScanner, type RecordedScanRequest } from '../helpers/harbor-scanner.ts';
import { conforms } from '../helpers/openapi.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import { buildLayer } from '../helpers/tar.ts';

const PREFIX = '/api/v1';
const FIXTURES = fileURLToPath(new URL('../fixtures/osv/', import.meta.url));
const ADMIN = basic('root', 'root-password-1');
const OWNER = basic('owner', 'owner-password-1');
const DEV = basic('dev', 'dev-password-1');
const READER = basic('reader', 'reader-password-1');

const ZLIB_ID = 'DEBIAN-CVE-2023-45853';
const MINIMIST_ID = 'GHSA-xvch-5gv4-984h';
const MINIMIST_ALIAS = 'CVE-2021-44906';
const CSV_HEADER =
  'repository,digest,id,aliases,severity,score,package,ecosystem,installed,fixed,purl,allowlisted,blocking,summary';

interface FindingView {
  id: string;
  aliases: string[];
  package: { ecosystem: string; name: string; version: string; purl: string | null };
  fixedVersion: string | null;
  severity: string;
  score: number | null;
  summary: string | null;
  allowlisted: { id: string; expiresAt: string | null } | null;
  blocking: boolean;
}
interface ScanView {
  repository: string;
  digest: string;
  status: string;
  scanner: { name: string } | null;
  error: string | null;
  databaseRevision: number | null;
  os: { id: string; versionId: string | null } | null;
  summary: Record<string, number>;
  policy: { mode: string; severity: string; blocking: number; allowlisted: number };
  packageCount: number;
  packages?: { ecosystem: string; name: string; version: string; sourceName?: string; purl: string }[];
  vulnerabilities: FindingView[];
}
interface PolicyView {
  namespace: string;
  policy: Record<string, unknown> & { mode: string; scanner: string };
  updatedBy: string | null;
  updatedAt: string | null;
}

/** RFC 4180 records of `text` (quoted fields with doubled quotes, CRLF line ends). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  assert.equal(field, '', 'the text ends with CRLF');
  return rows;
}

let work: string;
let debianLayer: Buffer;
let npmLayer: Buffer;
let machinePackages: number;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-scan-api-'));
  const status = await readFile('/var/lib/dpkg/status', 'utf8');
  machinePackages = status.split('\n').filter((line) => line.startsWith('Package: ')).length;
  debianLayer = await readFile(
    await buildLayer(
      work,
      [
        ['etc/os-release', await readFile('/etc/os-release')],
        ['var/lib/dpkg/status', status],
      ],
      { compression: 'gzip' },
    ),
  );
  // minimist's published package.json, its version set to 1.2.5 (vulnerable to GHSA-xvch-5gv4-984h).
  const minimist = JSON.parse(
    await readFile(new URL('../../node_modules/minimist/package.json', import.meta.url), 'utf8'),
  ) as object;
  npmLayer = await readFile(
    await buildLayer(
      work,
      [['app/node_modules/minimist/package.json', JSON.stringify({ ...minimist, version: '1.2.5' })]],
      { compression: 'gzip' },
    ),
  );
});
after(() => rm(work, { recursive: true, force: true }));

const pgSkip = await postgresSkipReason();
const dialects = [
  { name: 'sqlite', skip: false as const, schema: null },
  { name: 'postgres', skip: pgSkip, schema: `berth_test_${randomBytes(6).toString('hex')}` },
];

for (const dialect of dialects) {
  describe(`scanning admin API on ${dialect.name}`, { skip: dialect.skip }, () => {
    let reg: TestRegistry;
    let digest: string;

    async function api(
      method: 'GET' | 'PUT' | 'DELETE' | 'POST',
      path: string,
      headers: Headers,
      body?: unknown,
    ): Promise<Response> {
      const url = `${PREFIX}${path}`;
      const res = await reg.inject({
        method,
        url,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      });
      conforms(method, url, res);
      return res;
    }

    /** A raw request (CSV and SBOM answers are not JSON of the documented schema). */
    function raw(path: string, headers: Headers): Promise<Response> {
      return reg.inject({ method: 'GET', url: `${PREFIX}${path}`, headers });
    }

    const report = (query = '', who: Headers = READER) =>
      api('GET', `/repositories/team%2Fapp/scan?reference=v1${query}`, who);

    before(async () => {
      reg = await createTestRegistry({
        'auth.mode': 'basic',
        ...(dialect.schema === null
          ? {}
          : {
              'metadata.driver': 'postgres',
              'metadata.postgres.url': POSTGRES_URL,
              'metadata.postgres.schema': dialect.schema,
            }),
      });
      await addUser(reg, 'root', 'root-password-1', { admin: true });
      for (const name of ['owner', 'dev', 'reader']) await addUser(reg, name, `${name}-password-1`);
      await addNamespace(reg, 'team', 'private', [
        ['user', 'owner', 'admin'],
        ['user', 'dev', 'developer'],
        ['user', 'reader', 'reader'],
      ]);
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
      for (const blob of [config, debianLayer, npmLayer]) await pushBlobAs(reg, DEV, 'team/app', blob);
      const bytes = manifestBytes(
        imageManifest({
          config: descriptorOf(config, OCI_CONFIG),
          layers: [descriptorOf(debianLayer, OCI_LAYER), descriptorOf(npmLayer, OCI_LAYER)],
        }),
      );
      const res = await putManifestAs(reg, DEV, 'team/app', 'v1', bytes);
      assert.equal(res.statusCode, 201, res.body);
      digest = sha256(bytes);
      const imported = await importDirectory(reg.services.vulnDb, FIXTURES);
      assert.equal(imported.invalid, 0);
      await reg.services.scanning.databaseChanged(imported.revision, imported.changed);
    });
    after(async () => {
      await reg?.dispose();
      if (dialect.schema !== null && !dialect.skip) {
        const admin = new pg.Client({ connectionString: POSTGRES_URL });
        await admin.connect();
        await admin.query(`drop schema if exists "${dialect.schema}" cascade`).finally(() => admin.end());
      }
    });

    it('has no report nor SBOM before a scan', async () => {
      const res = await report();
      assert.equal(res.statusCode, 200, res.body);
      const view = json<ScanView>(res);
      assert.equal(view.status, 'none');
      assert.equal(view.digest, digest);
      assert.deepEqual(view.vulnerabilities, []);
      assert.equal(view.packageCount, 0);
      assertError(
        await api('GET', '/repositories/team%2Fapp/sbom?reference=v1', READER),
        404,
        'NAME_UNKNOWN',
      );
      assertError(await api('GET', '/repositories/team%2Fapp/scan', READER), 400, 'UNSUPPORTED');
    });

    it('scans on request for those who may push, waiting for the report', async () => {
      assertError(
        await api('POST', '/repositories/team%2Fapp/scan?reference=v1&wait=true', READER),
        403,
        'DENIED',
      );
      const res = await api('POST', '/repositories/team%2Fapp/scan?reference=v1&wait=true', DEV);
      assert.equal(res.statusCode, 200, res.body);
      const view = json<ScanView>(res);
      assert.equal(view.status, 'done');
      assert.equal(view.scanner?.name, 'berth');
      assert.equal(view.os?.id, 'debian');
      assert.equal(view.os?.versionId, '12');
      assert.equal(view.packageCount, machinePackages + 1, 'the dpkg packages and minimist');
      assert.equal(view.databaseRevision, await reg.services.vulnDb.revision());
      const ids = new Set(view.vulnerabilities.map((f) => f.id));
      assert.deepEqual([...ids].sort(), [ZLIB_ID, MINIMIST_ID].sort());
      assert.equal(view.summary.critical, view.vulnerabilities.length);
      // Under the default policy (off, critical) every critical finding would block.
      assert.equal(view.policy.mode, 'off');
      assert.equal(view.policy.blocking, 2);
      assert.ok(view.vulnerabilities.every((f) => f.blocking && f.allowlisted === null));

      const audit = await reg.services.auth.store.queryAudit({ action: 'scanning.scan', limit: 10 });
      assert.ok(audit.items.some((a) => a.target === `team/app@${digest}`));

      // Without wait: a job is enqueued, the report as it stands is returned.
      const queued = await api('POST', `/repositories/team%2Fapp/scan?reference=${digest}`, DEV);
      assert.equal(queued.statusCode, 202, queued.body);
      assert.equal(json<ScanView>(queued).status, 'done');
      assert.deepEqual(json<ScanView>(queued).vulnerabilities, view.vulnerabilities);
    });

    it('filters the report by severity, fixability, package and id', async () => {
      const all = json<ScanView>(await report()).vulnerabilities;
      const zlib = all.filter((f) => f.id === ZLIB_ID);
      assert.ok(zlib.length > 0);
      assert.ok(zlib.every((f) => f.fixedVersion === null && f.severity === 'critical'));

      assert.equal(json<ScanView>(await report('&severity=critical')).vulnerabilities.length, all.length);
      assert.deepEqual(json<ScanView>(await report('&severity=high')).vulnerabilities, all);
      const fixable = json<ScanView>(await report('&fixable=true')).vulnerabilities;
      assert.deepEqual(
        fixable.map((f) => [f.id, f.package.name, f.fixedVersion]),
        [[MINIMIST_ID, 'minimist', '1.2.6']],
      );
      const byPackage = json<ScanView>(await report('&package=zlib1g')).vulnerabilities;
      assert.deepEqual(
        byPackage.map((f) => [f.id, f.package.name]),
        [[ZLIB_ID, 'zlib1g']],
      );
      const byAlias = json<ScanView>(await report(`&id=${MINIMIST_ALIAS.toLowerCase()}`));
      assert.deepEqual(
        byAlias.vulnerabilities.map((f) => f.id),
        [MINIMIST_ID],
      );
      // The summary counts every finding whatever the filter.
      assert.equal(byAlias.summary.critical, all.length);
      assert.deepEqual(json<ScanView>(await report('&package=no-such-package')).vulnerabilities, []);
      assertError(await report('&severity=severe'), 400, 'UNSUPPORTED');
      assertError(await report('&format=xml'), 400, 'UNSUPPORTED');
    });

    it('lists the installed packages with packages=true, and only then', async () => {
      const plain = json<ScanView>(await report());
      assert.equal(plain.packages, undefined);
      const withPackages = json<ScanView>(await report('&packages=true'));
      const packages = withPackages.packages ?? [];
      assert.equal(packages.length, plain.packageCount);
      const zlib = packages.find((p) => p.name === 'zlib1g');
      assert.equal(zlib?.sourceName, 'zlib');
      assert.ok(zlib?.purl.startsWith('pkg:deb/debian/zlib1g@'), zlib?.purl);
      assert.ok(
        packages.some((p) => p.ecosystem === 'npm' && p.name === 'minimist' && p.version === '1.2.5'),
      );
      assertError(await report('&packages=yes'), 400, 'UNSUPPORTED');
    });

    it('answers CSV for format=csv and for Accept: text/csv, quoting fields', async () => {
      const view = json<ScanView>(await report());
      const res = await raw('/repositories/team%2Fapp/scan?reference=v1&format=csv', READER);
      assert.equal(res.statusCode, 200, res.body);
      assert.match(String(res.headers['content-type']), /^text\/csv/);
      assert.match(
        String(res.headers['content-disposition']),
        /^attachment; filename="scan-sha256-[0-9a-f]{64}\.csv"$/,
      );
      assert.equal(res.body.split('\r\n')[0], CSV_HEADER);
      const rows = parseCsv(res.body);
      assert.equal(rows.length, view.vulnerabilities.length + 1);
      const header = rows[0]!;
      const records = rows.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
      assert.deepEqual(
        records.map((r) => [r.id, r.package, r.installed, r.fixed, r.severity, r.blocking]),
        view.vulnerabilities.map((f) => [
          f.id,
          f.package.name,
          f.package.version,
          f.fixedVersion ?? '',
          f.severity,
          String(f.blocking),
        ]),
      );
      // The zlib summary holds commas: quoted in the text, whole once parsed.
      const zlib = view.vulnerabilities.find((f) => f.id === ZLIB_ID)!;
      assert.ok(zlib.summary?.includes(','));
      assert.ok(res.body.includes(`"${zlib.summary}"`));
      assert.equal(records.find((r) => r.id === ZLIB_ID)?.summary, zlib.summary);
      assert.equal(records.find((r) => r.id === MINIMIST_ID)?.aliases, MINIMIST_ALIAS);

      const accepted = await raw('/repositories/team%2Fapp/scan?reference=v1', {
        ...READER,
        accept: 'text/csv',
      });
      assert.match(String(accepted.headers['content-type']), /^text\/csv/);
      assert.equal(accepted.body, res.body);
      const filtered = await raw(
        '/repositories/team%2Fapp/scan?reference=v1&format=csv&fixable=true',
        READER,
      );
      assert.equal(parseCsv(filtered.body).length, 2);
    });

    it('serves the SBOM as SPDX or CycloneDX', async () => {
      const spdx = await raw('/repositories/team%2Fapp/sbom?reference=v1&format=spdx', READER);
      assert.equal(spdx.statusCode, 200, spdx.body);
      assert.match(String(spdx.headers['content-type']), /^application\/spdx\+json/);
      const spdxDoc = json<{ spdxVersion: string; packages: { name: string; versionInfo?: string }[] }>(spdx);
      assert.match(spdxDoc.spdxVersion, /^SPDX-2\./);
      assert.ok(spdxDoc.packages.some((p) => p.name === 'minimist' && p.versionInfo === '1.2.5'));
      assert.ok(spdxDoc.packages.some((p) => p.name === 'zlib1g'));
      const byDefault = await raw('/repositories/team%2Fapp/sbom?reference=v1', READER);
      assert.match(String(byDefault.headers['content-type']), /^application\/spdx\+json/);

      const cdx = await raw(`/repositories/team%2Fapp/sbom?reference=${digest}&format=cyclonedx`, READER);
      assert.equal(cdx.statusCode, 200, cdx.body);
      assert.match(String(cdx.headers['content-type']), /^application\/vnd\.cyclonedx\+json/);
      const cdxDoc = json<{ bomFormat: string; components: { name: string; version: string }[] }>(cdx);
      assert.equal(cdxDoc.bomFormat, 'CycloneDX');
      assert.ok(cdxDoc.components.some((c) => c.name === 'minimist' && c.version === '1.2.5'));
      assertError(
        await api('GET', '/repositories/team%2Fapp/sbom?reference=v1&format=swid', READER),
        400,
        'UNSUPPORTED',
      );
    });

    it('a namespace admin sets, reads and removes the policy; others may not; invalid ones name the field', async () => {
      const initial = await api('GET', '/namespaces/team/scanning/policy', OWNER);
      assert.equal(initial.statusCode, 200, initial.body);
      assert.deepEqual(json(initial), {
        namespace: 'team',
        policy: {
          mode: 'off',
          severity: 'critical',
          fixableOnly: false,
          requireScan: false,
          scanOnPush: true,
          scanner: 'berth',
          attachSboms: false,
          allowlist: [],
        },
        updatedBy: null,
        updatedAt: null,
      });
      assertError(await api('GET', '/namespaces/team/scanning/policy', DEV), 403, 'DENIED');
      assertError(
        await api('PUT', '/namespaces/team/scanning/policy', READER, { mode: 'warn' }),
        403,
        'DENIED',
      );

      const cases: [unknown, string][] = [
        [{ mode: 'block' }, 'mode'],
        [{ severity: 'severe' }, 'severity'],
        [{ allowlist: [{ id: 'CVE-1', expiresAt: 'tomorrow' }] }, 'allowlist.0.expiresAt'],
        [{ mode: 'warn', colour: 'red' }, 'colour'],
        [{ scanner: 'nope' }, 'scanner'],
      ];
      for (const [document, field] of cases) {
        const res = await api('PUT', '/namespaces/team/scanning/policy', OWNER, document);
        assertError(res, 400, 'UNSUPPORTED');
        const [error] = json<{ errors: { detail?: { field?: string } }[] }>(res).errors;
        assert.equal(error?.detail?.field, field, res.body);
      }

      const warn = await api('PUT', '/namespaces/team/scanning/policy', OWNER, { mode: 'warn' });
      assert.equal(warn.statusCode, 200, warn.body);
      const warned = await reg.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: READER });
      assert.equal(warned.statusCode, 200);
      assert.match(String(warned.headers.warning), /^199 berth ".*DEBIAN-CVE-2023-45853/);

      const set = await api('PUT', '/namespaces/team/scanning/policy', OWNER, {
        mode: 'enforce',
        allowlist: [{ id: MINIMIST_ALIAS, reason: 'not reachable' }],
      });
      assert.equal(set.statusCode, 200, set.body);
      const view = json<PolicyView>(set);
      assert.equal(view.policy.mode, 'enforce');
      assert.equal(view.policy.severity, 'critical');
      assert.equal(view.updatedBy, 'owner');
      assert.ok(view.updatedAt !== null);
      assert.deepEqual(json(await api('GET', '/namespaces/team/scanning/policy', ADMIN)), view);

      // The report applies it: minimist allowlisted by its alias, zlib blocking.
      const applied = json<ScanView>(await report());
      assert.equal(applied.policy.mode, 'enforce');
      assert.equal(applied.policy.blocking, 1);
      assert.equal(applied.policy.allowlisted, 1);
      const minimist = applied.vulnerabilities.find((f) => f.id === MINIMIST_ID)!;
      assert.deepEqual(minimist.allowlisted, { id: MINIMIST_ALIAS, expiresAt: null });
      assert.equal(minimist.blocking, false);

      // And a pull meets it: 412 for a reader, a pusher passes.
      const pulled = await reg.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: READER });
      assertError(pulled, 412, 'DENIED');
      assert.match(json<{ errors: { message: string }[] }>(pulled).errors[0]!.message, new RegExp(ZLIB_ID));
      const pushed = await reg.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: DEV });
      assert.equal(pushed.statusCode, 200);

      const removed = await api('DELETE', '/namespaces/team/scanning/policy', OWNER);
      assert.equal(removed.statusCode, 200, removed.body);
      assert.equal(json<PolicyView>(removed).policy.mode, 'off');
      assert.equal(json<PolicyView>(removed).updatedAt, null);
      assertError(await api('DELETE', '/namespaces/team/scanning/policy', DEV), 403, 'DENIED');
      const again = await reg.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: READER });
      assert.equal(again.statusCode, 200);

      const audit = await reg.services.auth.store.queryAudit({ action: 'scanning.policy.', limit: 10 });
      const actions = audit.items.filter((a) => a.target === 'team').map((a) => a.action);
      assert.ok(actions.includes('scanning.policy.set'));
      assert.ok(actions.includes('scanning.policy.remove'));
    });

    it('system admins register and remove scanners; a used scanner cannot be removed', async () => {
      assertError(await api('GET', '/scanners', OWNER), 403, 'DENIED');
      assertError(
        await api('PUT', '/scanners/trivy', OWNER, { url: 'http://trivy.invalid:8080' }),
        403,
        'DENIED',
      );
      assert.deepEqual(json(await api('GET', '/scanners', ADMIN)), { scanners: [] });

      const put = await api('PUT', '/scanners/trivy', ADMIN, { url: 'http://trivy.invalid:8080/' });
      assert.equal(put.statusCode, 200, put.body);
      const scanner = json<{ name: string; url: string; authenticated: boolean; createdAt: string }>(put);
      assert.deepEqual(
        [scanner.name, scanner.url, scanner.authenticated],
        ['trivy', 'http://trivy.invalid:8080', false],
      );
      assert.deepEqual(json(await api('GET', '/scanners', ADMIN)), { scanners: [scanner] });

      for (const [name, body, field] of [
        ['berth', { url: 'http://x.invalid' }, 'name'],
        ['trivy', { url: 'ftp://x.invalid' }, 'url'],
        ['trivy', { url: 'not a url' }, 'url'],
      ] as const) {
        const res = await api('PUT', `/scanners/${name}`, ADMIN, body);
        assertError(res, 400, 'UNSUPPORTED');
        assert.equal(
          json<{ errors: { detail?: { field?: string } }[] }>(res).errors[0]?.detail?.field,
          field,
        );
      }

      // A policy may name it once registered (an unknown one is refused, see above); then it cannot be removed.
      const policy = await api('PUT', '/namespaces/team/scanning/policy', OWNER, { scanner: 'trivy' });
      assert.equal(policy.statusCode, 200, policy.body);
      const refused = await api('DELETE', '/scanners/trivy', ADMIN);
      assertError(refused, 409, 'UNSUPPORTED');
      assert.match(refused.body, /namespace team/);
      assertError(await api('DELETE', '/scanners/trivy', OWNER), 403, 'DENIED');

      await api('DELETE', '/namespaces/team/scanning/policy', OWNER);
      const removed = await api('DELETE', '/scanners/trivy', ADMIN);
      assert.equal(removed.statusCode, 204, removed.body);
      assertError(await api('DELETE', '/scanners/trivy', ADMIN), 404, 'NAME_UNKNOWN');
      assert.deepEqual(json(await api('GET', '/scanners', ADMIN)), { scanners: [] });
    });
    it('scans with an external scanner, whose report stands when a built-in rescan fails', async () => {
      const adapter = await startHarborScanner({
        // A report shaped as the Trivy adapter writes it (one finding).
        report: (request: RecordedScanRequest) => ({
          generated_at: '2026-12-08T01:00:00.123456789Z',
          artifact: { ...request.body.artifact },
          scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.58.1' },
          severity: 'High',
          vulnerabilities: [
            {
              id: 'CVE-2023-4911',
              package: 'libc6',
              version: '2.36-9+deb12u1',
              fix_version: '2.36-9+deb12u3',
              severity: 'High',
              links: ['https://avd.aquasec.com/nvd/cve-2023-4911'],
            },
          ],
        }),
      });
      try {
        const put = await api('PUT', '/scanners/adapter', ADMIN, { url: adapter.url });
        assert.equal(put.statusCode, 200, put.body);
        const policy = await api('PUT', '/namespaces/team/scanning/policy', OWNER, {
          mode: 'enforce',
          severity: 'high',
          scanner: 'adapter',
        });
        assert.equal(policy.statusCode, 200, policy.body);
        // An image whose one layer is random bytes: the built-in scanner cannot read it, the adapter reports.
        const image = await pushImageAs(reg, DEV, 'team/ext', 'v1');

        const scanned = await api('POST', '/repositories/team%2Fext/scan?reference=v1&wait=true', DEV);
        assert.equal(scanned.statusCode, 200, scanned.body);
        const view = json<ScanView>(scanned);
        assert.equal(view.status, 'done');
        assert.equal(view.scanner?.name, 'Trivy');
        assert.deepEqual(
          view.vulnerabilities.map((f) => [f.id, f.package.name, f.fixedVersion, f.severity, f.blocking]),
          [['CVE-2023-4911', 'libc6', '2.36-9+deb12u3', 'high', true]],
        );
        assert.deepEqual(
          adapter.scanRequests.map((r) => [r.body.artifact.repository, r.body.artifact.digest]),
          [['team/ext', image.digest]],
        );
        // No inventory from an external scanner: no SBOM.
        assertError(
          await api('GET', '/repositories/team%2Fext/sbom?reference=v1', READER),
          404,
          'NAME_UNKNOWN',
        );
        const refused = await reg.inject({
          method: 'GET',
          url: '/v2/team/ext/manifests/v1',
          headers: READER,
        });
        assertError(refused, 412, 'DENIED');

        // Back to the built-in scanner, which fails on the layer: the adapter's findings still block.
        await api('PUT', '/namespaces/team/scanning/policy', OWNER, { mode: 'enforce', severity: 'high' });
        const rescan = await api('POST', '/repositories/team%2Fext/scan?reference=v1&wait=true', DEV);
        assert.equal(rescan.statusCode, 200, rescan.body);
        const failed = json<ScanView>(rescan);
        assert.equal(failed.status, 'failed');
        assert.ok(failed.error !== null && failed.error.length > 0);
        assert.deepEqual(
          failed.vulnerabilities.map((f) => f.id),
          ['CVE-2023-4911'],
        );
        const still = await reg.inject({ method: 'GET', url: '/v2/team/ext/manifests/v1', headers: READER });
        assertError(still, 412, 'DENIED');
        assert.match(json<{ errors: { message: string }[] }>(still).errors[0]!.message, /CVE-2023-4911/);
      } finally {
        await api('DELETE', '/namespaces/team/scanning/policy', OWNER);
        await api('DELETE', '/scanners/adapter', ADMIN);
        await adapter.close();
      }
    });
    it('keeps serving the built-in SBOM while a rescan by an external scanner fails', async () => {
      const adapter = await startHarborScanner({ report: () => ({ vulnerabilities: [] }) });
      adapter.failures.scan = 'error-500';
      try {
        const config = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux' }));
        await pushBlobAs(reg, DEV, 'team/sbom', config);
        for (const blob of [debianLayer, npmLayer]) await pushBlobAs(reg, DEV, 'team/sbom', blob);
        const bytes = manifestBytes(
          imageManifest({
            config: descriptorOf(config, OCI_CONFIG),
            layers: [descriptorOf(debianLayer, OCI_LAYER), descriptorOf(npmLayer, OCI_LAYER)],
          }),
        );
        assert.equal((await putManifestAs(reg, DEV, 'team/sbom', 'v1', bytes)).statusCode, 201);
        const scanned = await api('POST', '/repositories/team%2Fsbom/scan?reference=v1&wait=true', DEV);
        assert.equal(json<ScanView>(scanned).status, 'done');

        await api('PUT', '/scanners/failing', ADMIN, { url: adapter.url });
        await api('PUT', '/namespaces/team/scanning/policy', OWNER, { scanner: 'failing' });
        const rescan = await reg.inject({
          method: 'POST',
          url: `${PREFIX}/repositories/team%2Fsbom/scan?reference=v1&wait=true`,
          headers: DEV,
        });
        assert.ok(rescan.statusCode >= 500, `${rescan.statusCode} ${rescan.body}`);
        assert.ok(adapter.requests.some((r) => r.method === 'POST' && r.path.endsWith('/scan')));

        const view = json<ScanView>(await api('GET', '/repositories/team%2Fsbom/scan?reference=v1', READER));
        assert.equal(view.status, 'failed');
        assert.equal(view.scanner?.name, 'berth');
        assert.ok(view.vulnerabilities.some((f) => f.id === MINIMIST_ID));
        const sbom = await raw('/repositories/team%2Fsbom/sbom?reference=v1', READER);
        assert.equal(sbom.statusCode, 200, sbom.body);
        assert.ok(
          json<{ packages: { name: string }[] }>(sbom).packages.some((p) => p.name === 'minimist'),
          'the inventory of the built-in scan',
        );
      } finally {
        await api('DELETE', '/namespaces/team/scanning/policy', OWNER);
        await api('DELETE', '/scanners/failing', ADMIN);
        await adapter.close();
      }
    });
  });
}
