/**
 * Matching inventories against the vulnerability database, with the real OSV fixtures imported (npm, PyPI, Ubuntu,
 * Debian) and a few hand-written records, marked as such, for what no fixture shows (Alpine, an unfixed
 * vulnerability, a CVE record beside the DSA that aliases it): matches with their fix, no match once the fix is
 * installed, source-package and release mapping for distributions, alias deduplication, the order of findings.
 */
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { VulnDbStore } from '../../src/metadata/vulndb-store.ts';
import type { OsInfo, Package } from '../../src/scanning/inventory/types.ts';
import { importRecords } from '../../src/scanning/vulndb/import.ts';
import { findVulnerabilities, osvQuery } from '../../src/scanning/vulndb/match.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

const FIXTURES = new URL('../fixtures/osv/', import.meta.url);

const os = (id: string, versionId: string | null): OsInfo => ({
  id,
  versionId,
  versionCodename: null,
  idLike: [],
});

function pkg(
  ecosystem: Package['ecosystem'],
  name: string,
  version: string,
  source: { name?: string; version?: string } = {},
): Package {
  const type = {
    'Red Hat': 'rpm',
    'Rocky Linux': 'rpm',
    AlmaLinux: 'rpm',
    openSUSE: 'rpm',
    SUSE: 'rpm',
    Debian: 'deb',
    Ubuntu: 'deb',
    Alpine: 'apk',
    npm: 'npm',
    PyPI: 'pypi',
    Go: 'golang',
    Maven: 'maven',
  }[ecosystem];
  return {
    ecosystem,
    name,
    version,
    ...(source.name !== undefined ? { sourceName: source.name } : {}),
    ...(source.version !== undefined ? { sourceVersion: source.version } : {}),
    purl: `pkg:${type}/${name}@${version}`,
    locations: [],
  };
}

// Hand-written records (not published anywhere), in the shapes the Alpine secdb and Debian tracker conversions use.
const HAND_WRITTEN = [
  {
    id: 'ALPINE-TEST-0001',
    modified: '2024-01-10T00:00:00Z',
    summary: 'hand-written Alpine record',
    database_specific: { severity: 'High' },
    affected: [
      {
        package: { ecosystem: 'Alpine:v3.19', name: 'openssl' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.1.4-r3' }] }],
      },
    ],
  },
  {
    id: 'CVE-2014-3616',
    modified: '2024-01-10T00:00:00Z',
    summary: 'hand-written CVE record of the Debian tracker',
    affected: [
      {
        package: { ecosystem: 'Debian:7', name: 'nginx' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.2.1-2.2+wheezy3' }] }],
        ecosystem_specific: { urgency: 'low' },
      },
    ],
  },
  {
    id: 'DEBIAN-TEST-UNFIXED',
    modified: '2024-01-10T00:00:00Z',
    affected: [
      {
        package: { ecosystem: 'Debian:7', name: 'nginx' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }],
      },
    ],
  },
];

const sqlite = (await testDatabases())[0]!;

describe('vulnerability matching', () => {
  let db: TestDatabase;
  let store: VulnDbStore;
  before(async () => {
    db = await sqlite.create();
    store = db.store.vulnDbStore();
    const names = (await readdir(FIXTURES)).filter((n) => n.endsWith('.json'));
    const fixtures = await Promise.all(names.map((n) => readFile(new URL(n, FIXTURES), 'utf8')));
    const result = await importRecords(store, [...fixtures, ...HAND_WRITTEN]);
    assert.equal(result.invalid, 0);
  });
  after(() => db.cleanup());

  it('finds language packages in their ranges with the next fix, in severity order', async () => {
    const findings = await findVulnerabilities(store, null, [
      pkg('npm', 'semver', '7.5.1'),
      pkg('npm', 'semver', '5.0.0'),
      pkg('npm', 'minimist', '1.2.5'),
      pkg('PyPI', 'urllib3', '2.0.4'),
      pkg('npm', 'left-pad', '1.0.0'),
    ]);
    assert.deepEqual(
      findings.map((f) => [f.id, f.package.name, f.package.version, f.fixedVersion, f.severity, f.score]),
      [
        ['GHSA-xvch-5gv4-984h', 'minimist', '1.2.5', '1.2.6', 'critical', 9.8],
        ['GHSA-c2qf-rxjj-qqgw', 'semver', '5.0.0', '5.7.2', 'medium', 5.3],
        ['GHSA-c2qf-rxjj-qqgw', 'semver', '7.5.1', '7.5.2', 'medium', 5.3],
        ['GHSA-v845-jxx5-vc9f', 'urllib3', '2.0.4', '2.0.6', 'medium', 5.9],
      ],
    );
    const urllib3 = findings[3]!;
    assert.deepEqual(urllib3.aliases, ['CVE-2023-43804']);
    assert.equal(urllib3.package.purl, 'pkg:pypi/urllib3@2.0.4');
    // The record lists a WEB reference first; the ADVISORY one leads the links.
    assert.equal(urllib3.links[0], 'https://nvd.nist.gov/vuln/detail/CVE-2023-43804');
    assert.equal(new Set(urllib3.links).size, urllib3.links.length);
    assert.ok(urllib3.summary !== null && urllib3.summary.length > 0);
  });

  it('finds nothing once the fixed version is installed', async () => {
    const findings = await findVulnerabilities(store, null, [
      pkg('npm', 'semver', '7.5.2'),
      pkg('npm', 'minimist', '1.2.6'),
      pkg('PyPI', 'urllib3', '1.26.17'),
    ]);
    assert.deepEqual(findings, []);
  });

  it('matches PyPI names in their normal form', async () => {
    const findings = await findVulnerabilities(store, null, [pkg('PyPI', 'URLLib3', '1.26.0')]);
    assert.deepEqual(
      findings.map((f) => [f.id, f.package.name, f.fixedVersion]),
      [['GHSA-v845-jxx5-vc9f', 'URLLib3', '1.26.17']],
    );
  });

  it('matches Debian binary packages by their source package and release, keeping the CVE of an aliased pair', async () => {
    const nginx = pkg('Debian', 'nginx-common', '1.2.1-2.2+wheezy2', { name: 'nginx' });
    const findings = await findVulnerabilities(store, os('debian', '7'), [nginx]);
    // DSA-3029-1 lists CVE-2014-3616 as an alias: only the CVE is kept. The unfixed record stays.
    assert.deepEqual(
      findings.map((f) => [f.id, f.package.name, f.package.version, f.fixedVersion, f.severity]),
      [
        ['CVE-2014-3616', 'nginx-common', '1.2.1-2.2+wheezy2', '1.2.1-2.2+wheezy3', 'low'],
        ['DEBIAN-TEST-UNFIXED', 'nginx-common', '1.2.1-2.2+wheezy2', null, 'unknown'],
      ],
    );
    assert.equal(findings[1]?.score, null);

    // Another release, or no os-release: the release-specific records do not apply.
    assert.deepEqual(await findVulnerabilities(store, os('debian', '12'), [nginx]), []);
    assert.deepEqual(await findVulnerabilities(store, null, [nginx]), []);
    // By its binary name alone, nothing is known.
    assert.deepEqual(
      await findVulnerabilities(store, os('debian', '7'), [
        pkg('Debian', 'nginx-common', '1.2.1-2.2+wheezy2'),
      ]),
      [],
    );
    // The fixed source version installed: only the unfixed one remains.
    const fixed = pkg('Debian', 'nginx-common', '1.2.1-2.2+wheezy3', { name: 'nginx' });
    assert.deepEqual(
      (await findVulnerabilities(store, os('debian', '7'), [fixed])).map((f) => f.id),
      ['DEBIAN-TEST-UNFIXED'],
    );
  });

  it('uses the package name as the source name when the database names none', async () => {
    const nginx = pkg('Debian', 'nginx', '1.2.1-2.2+wheezy2');
    const ids = (await findVulnerabilities(store, os('debian', '7'), [nginx])).map((f) => f.id);
    assert.ok(ids.includes('DEBIAN-TEST-UNFIXED'));
    assert.ok(!ids.includes('DSA-3029-1'));
    assert.deepEqual(ids.length, 2);
  });

  it('queries Debian with the source version, a binNMU suffix stripped', () => {
    const binnmu = pkg('Debian', 'libfoo1', '1.2-3+b2', { name: 'foo' });
    assert.deepEqual(osvQuery(binnmu, os('debian', '12')), {
      ecosystem: 'Debian',
      release: '12',
      name: 'foo',
      version: '1.2-3',
    });
    const explicit = pkg('Debian', 'libfoo1', '1:1.2-3+b2', { name: 'foo', version: '1:1.2-3' });
    assert.equal(osvQuery(explicit, os('debian', '12')).version, '1:1.2-3');
    assert.equal(osvQuery(binnmu, os('ubuntu', '22.04')).release, undefined);
  });

  it('matches Ubuntu releases with and without their LTS suffix', async () => {
    const django = pkg('Ubuntu', 'python-django', '1.6.1-2ubuntu0.1', { name: 'python-django' });
    const findings = await findVulnerabilities(store, os('ubuntu', '14.04'), [django]);
    assert.deepEqual(
      findings.map((f) => [f.id, f.fixedVersion, f.severity, f.links[0]]),
      [['USN-2169-2', '1.6.1-2ubuntu0.2', 'unknown', 'https://ubuntu.com/security/notices/USN-2169-2']],
    );
    assert.deepEqual(await findVulnerabilities(store, os('ubuntu', '16.04'), [django]), []);
    assert.equal(osvQuery(django, os('ubuntu', '22.04')).release, '22.04');
  });

  it('matches Alpine packages by origin, on the v<major>.<minor> branch of VERSION_ID', async () => {
    const libssl = pkg('Alpine', 'libssl3', '3.1.4-r2', { name: 'openssl' });
    const findings = await findVulnerabilities(store, os('alpine', '3.19.1'), [libssl]);
    assert.deepEqual(
      findings.map((f) => [f.id, f.package.name, f.fixedVersion, f.severity]),
      [['ALPINE-TEST-0001', 'libssl3', '3.1.4-r3', 'high']],
    );
    assert.deepEqual(await findVulnerabilities(store, os('alpine', '3.18.4'), [libssl]), []);
    assert.deepEqual(
      await findVulnerabilities(store, os('alpine', '3.19.1'), [
        pkg('Alpine', 'libssl3', '3.1.4-r3', { name: 'openssl' }),
      ]),
      [],
    );
  });

  it('reports one finding per advisory and package, however often the package is listed', async () => {
    const twice = [pkg('npm', 'minimist', '1.2.5'), pkg('npm', 'minimist', '1.2.5')];
    assert.equal((await findVulnerabilities(store, null, twice)).length, 1);
  });
});
