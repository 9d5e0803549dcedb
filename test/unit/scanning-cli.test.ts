/**
 * `berth scan`, `berth scanning policy show|set|remove`, `berth scanning scanners add|list|remove` and
 * `berth vulndb import` followed by a rematch, run as the real CLI on the data directory of a registry holding an
 * image of this machine's dpkg status (Debian 12) and two npm packages of vulnerable versions.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  createTestRegistry,
  descriptorOf,
  imageManifest,
  manifestBytes,
  OCI_CONFIG,
  OCI_LAYER,
  sha256,
  type TestRegistry,
} from '../helpers/app.ts';
import { blobKey } from '../../src/storage/paths.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';
import { buildLayer } from '../helpers/tar.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/osv/', import.meta.url));
const ZLIB_ID = 'DEBIAN-CVE-2023-45853';
const MINIMIST_ID = 'GHSA-xvch-5gv4-984h';
const SEMVER_ID = 'GHSA-c2qf-rxjj-qqgw';

interface ScanJson {
  status: string;
  digest: string;
  databaseRevision: number | null;
  summary: { critical: number; high: number; medium: number; low: number };
  vulnerabilities: { id: string; severity: string; package: { name: string; version: string } }[];
}

/** A published package.json from the project's own dependencies, its version set to `version`. */
async function npmManifest(name: string, version: string): Promise<string> {
  const json = JSON.parse(
    await readFile(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8'),
  ) as object;
  return JSON.stringify({ ...json, version });
}

describe('berth scan and berth scanning', () => {
  let reg: TestRegistry;
  let digest: string;
  let layerDigest: string;
  const berth = (args: string[], input?: string) =>
    runBerth(reg.dataDir, args, input === undefined ? {} : { input });
  const ids = (view: ScanJson): string[] => [...new Set(view.vulnerabilities.map((f) => f.id))].sort();

  before(async () => {
    reg = await createTestRegistry();
    const work = path.join(reg.dataDir, 'layers');
    const layer = await readFile(
      await buildLayer(
        work,
        [
          ['etc/os-release', await readFile('/etc/os-release')],
          ['var/lib/dpkg/status', await readFile('/var/lib/dpkg/status')],
          // minimist 1.2.5 (GHSA-xvch-5gv4-984h, critical) and semver 7.5.1 (GHSA-c2qf-rxjj-qqgw, medium).
          ['app/node_modules/minimist/package.json', await npmManifest('minimist', '1.2.5')],
          ['app/node_modules/semver/package.json', await npmManifest('semver', '7.5.1')],
        ],
        { compression: 'gzip' },
      ),
    );
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
    await reg.pushBlob('team/app', config);
    layerDigest = await reg.pushBlob('team/app', layer);
    const bytes = manifestBytes(
      imageManifest({ config: descriptorOf(config, OCI_CONFIG), layers: [descriptorOf(layer, OCI_LAYER)] }),
    );
    const res = await reg.putManifest('team/app', 'v1', bytes);
    assert.equal(res.statusCode, 201, res.body);
    digest = sha256(bytes);

    // The npm advisories first; the Debian ones come with the later import.
    const npmOnly = path.join(reg.dataDir, 'osv-npm');
    await mkdir(npmOnly);
    for (const file of [`${MINIMIST_ID}.json`, `${SEMVER_ID}.json`]) {
      await copyFile(path.join(FIXTURES, file), path.join(npmOnly, file));
    }
    const imported = succeeded(await berth(['vulndb', 'import', npmOnly, '--json']), 'vulndb import');
    assert.equal(JSON.parse(imported).added, 2);
  });
  after(() => reg.dispose());

  it('scans an image and prints its findings as a table', async () => {
    const out = succeeded(await berth(['scan', 'team/app:v1']), 'scan');
    assert.match(out, /^status:\s+done$/m);
    assert.match(out, new RegExp(`^digest:\\s+${digest}$`, 'm'));
    assert.match(out, /^os:\s+debian 12$/m);
    assert.match(out, /^vulnerabilities:\s+critical 1, high 0, medium 1, low 0, none 0, unknown 0$/m);
    assert.match(out, /^ID\s+SEVERITY\s+SCORE\s+PACKAGE\s+INSTALLED\s+FIXED\s+BLOCKS$/m);
    assert.match(
      out,
      new RegExp(`^${MINIMIST_ID}\\s+CRITICAL\\s+9\\.8\\s+minimist\\s+1\\.2\\.5\\s+1\\.2\\.6\\s+yes$`, 'm'),
    );
    assert.match(
      out,
      new RegExp(`^${SEMVER_ID}\\s+MEDIUM\\s+5\\.3\\s+semver\\s+7\\.5\\.1\\s+7\\.5\\.2\\s+no$`, 'm'),
    );
    // The critical one comes first.
    assert.ok(out.indexOf(MINIMIST_ID) < out.indexOf(SEMVER_ID));
    assert.ok(!out.includes(ZLIB_ID), 'no Debian advisory imported yet');
  });

  it('prints JSON, CSV, the cached report and a severity filter', async () => {
    const view = JSON.parse(
      succeeded(await berth(['scan', 'team/app:v1', '--cached', '--json']), 'json'),
    ) as ScanJson;
    assert.equal(view.status, 'done');
    assert.equal(view.digest, digest);
    assert.deepEqual(ids(view), [MINIMIST_ID, SEMVER_ID].sort());

    const csv = succeeded(await berth(['scan', `team/app@${digest}`, '--cached', '--csv']), 'csv');
    const lines = csv.trimEnd().split(/\r?\n/);
    assert.match(lines[0]!, /^repository,digest,id,aliases,severity,score,package,/);
    assert.equal(lines.length, 3);
    assert.ok(
      lines[1]!.startsWith(`team/app,${digest},${MINIMIST_ID},CVE-2021-44906,critical,9.8,minimist,npm`),
    );
    assert.ok(lines[2]!.startsWith(`team/app,${digest},${SEMVER_ID},CVE-2022-25883,medium,5.3,semver,npm`));

    const high = succeeded(await berth(['scan', 'team/app:v1', '--cached', '--severity', 'high']), 'high');
    assert.ok(high.includes(MINIMIST_ID));
    assert.ok(!high.includes(SEMVER_ID));
    const highJson = JSON.parse(
      succeeded(
        await berth(['scan', 'team/app:v1', '--cached', '--severity', 'high', '--json']),
        'high json',
      ),
    ) as ScanJson;
    assert.deepEqual(ids(highJson), [MINIMIST_ID]);
    assert.equal(highJson.summary.medium, 1, 'the summary counts what the filter leaves out');

    const bad = await berth(['scan', 'team/app:v1', '--cached', '--severity', 'severe']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /--severity must be one of/);
    const missing = await berth(['scan', 'team/app:v9']);
    assert.notEqual(missing.status, 0);
  });

  it('rematches the stored report after `berth vulndb import`, without scanning again', async () => {
    const before = JSON.parse(
      succeeded(await berth(['scan', 'team/app:v1', '--cached', '--json']), 'before'),
    ) as ScanJson;
    // The layer is gone from storage: what changes below comes from the stored inventory.
    assert.equal(await reg.services.storage.delete(blobKey(layerDigest)), true);
    const imported = JSON.parse(succeeded(await berth(['vulndb', 'import', FIXTURES, '--json']), 'import'));
    assert.ok(imported.added > 0);
    assert.ok(imported.revision > before.databaseRevision!);

    const afterImport = JSON.parse(
      succeeded(await berth(['scan', 'team/app:v1', '--cached', '--json']), 'after'),
    ) as ScanJson;
    assert.equal(afterImport.databaseRevision, imported.revision);
    assert.deepEqual(ids(afterImport), [MINIMIST_ID, SEMVER_ID, ZLIB_ID].sort());
    const zlib = afterImport.vulnerabilities.filter((f) => f.id === ZLIB_ID);
    assert.ok(zlib.some((f) => f.package.name === 'zlib1g'));
    assert.ok(zlib.every((f) => f.severity === 'critical'));
    assert.equal(afterImport.summary.critical, before.summary.critical + zlib.length);
    // The glibc DSA (fixed in 2.36-9+deb12u3) does not apply to this machine's glibc.
    assert.ok(!afterImport.vulnerabilities.some((f) => f.id === 'DSA-5514-1'));
    const table = succeeded(await berth(['scan', 'team/app:v1', '--cached']), 'table');
    assert.match(
      table,
      new RegExp(`^${ZLIB_ID}\\s+CRITICAL\\s+9\\.8\\s+zlib1g\\s+\\S+\\s+\\(none\\)\\s+yes$`, 'm'),
    );
  });

  it('sets, shows and removes a namespace policy', async () => {
    const file = path.join(reg.dataDir, 'scan-policy.yaml');
    await writeFile(
      file,
      'mode: warn\nseverity: high\nallowlist:\n  - id: cve-2021-44906\n    reason: not reachable\n',
    );
    const set = succeeded(await berth(['scanning', 'policy', 'set', 'team', '-f', file]), 'policy set');
    assert.match(set, /Set the scanning policy of team \(mode warn, high or higher blocks\)\./);
    const shown = succeeded(await berth(['scanning', 'policy', 'show', 'team']), 'policy show');
    assert.match(shown, /^namespace:\s+team$/m);
    assert.match(shown, /^mode: warn$/m);
    assert.match(shown, /^severity: high$/m);
    assert.match(shown, /^scanner: berth$/m);
    assert.match(shown, /id: cve-2021-44906/);
    const json = JSON.parse(succeeded(await berth(['scanning', 'policy', 'show', 'team', '--json']), 'json'));
    assert.equal(json.policy.mode, 'warn');
    assert.deepEqual(json.policy.allowlist, [{ id: 'cve-2021-44906', reason: 'not reachable' }]);

    // The report applies it: minimist allowlisted by its alias.
    const table = succeeded(await berth(['scan', 'team/app:v1', '--cached']), 'scan');
    assert.match(table, new RegExp(`^${MINIMIST_ID}\\s+CRITICAL\\s.*\\sallowlisted$`, 'm'));
    assert.match(table, /^policy:\s+warn, high or higher blocks: 1 blocking$/m);

    const piped = await berth(
      ['scanning', 'policy', 'set', 'team', '-f', '-'],
      JSON.stringify({ mode: 'block' }),
    );
    assert.notEqual(piped.status, 0);
    assert.match(piped.stderr, /mode/);

    const removed = succeeded(await berth(['scanning', 'policy', 'remove', 'team']), 'remove');
    assert.match(removed, /Removed the scanning policy of team\./);
    const back = JSON.parse(succeeded(await berth(['scanning', 'policy', 'show', 'team', '--json']), 'show'));
    assert.equal(back.policy.mode, 'off');
    assert.equal(back.updatedAt, null);
  });

  it('adds, lists and removes external scanners', async () => {
    assert.equal(succeeded(await berth(['scanning', 'scanners', 'list']), 'list').trim(), 'No scanners.');
    const added = succeeded(
      await berth(['scanning', 'scanners', 'add', 'trivy', 'http://trivy.invalid:8080/']),
      'add',
    );
    assert.match(added, /Registered scanner trivy at http:\/\/trivy\.invalid:8080\./);
    const list = succeeded(await berth(['scanning', 'scanners', 'list']), 'list');
    assert.match(list, /^NAME\s+URL\s+AUTHENTICATED\s+CREATED$/m);
    assert.match(list, /^trivy\s+http:\/\/trivy\.invalid:8080\s+no\s+\S/m);
    const json = JSON.parse(succeeded(await berth(['scanning', 'scanners', 'list', '--json']), 'json'));
    assert.deepEqual(
      json.map((s: { name: string; authenticated: boolean }) => [s.name, s.authenticated]),
      [['trivy', false]],
    );
    const bad = await berth(['scanning', 'scanners', 'add', 'berth', 'http://x.invalid']);
    assert.notEqual(bad.status, 0);

    const removed = succeeded(await berth(['scanning', 'scanners', 'remove', 'trivy']), 'remove');
    assert.match(removed, /Removed scanner trivy\./);
    const again = await berth(['scanning', 'scanners', 'remove', 'trivy']);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /no scanner named trivy/);
  });
});
