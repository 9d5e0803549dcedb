/**
 * OSV records (`src/scanning/osv.ts`) parsed from real published data, and the OSV evaluation algorithm
 * (`src/scanning/affected.ts`).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { isAffected, matchAdvisory, type CompareVersions } from '../../src/scanning/affected.ts';
import {
  MAX_DETAILS_CHARS,
  OsvError,
  parseAdvisory,
  splitEcosystem,
  type Affected,
  type RangeEvent,
} from '../../src/scanning/osv.ts';

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/osv/${name}`, import.meta.url), 'utf8');

/** Dotted numeric order (`1.10` > `1.9`); enough for the algorithm and the npm/PyPI fixtures' versions. */
const numeric: CompareVersions = (a, b) => {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
};

type EventSpec = Partial<Record<RangeEvent['kind'], string>>;

/** An affected entry of ECOSYSTEM ranges given as event lists, plus an optional versions list. */
function entry(
  ranges: EventSpec[][],
  versions: string[] = [],
  type: 'ECOSYSTEM' | 'GIT' = 'ECOSYSTEM',
): Affected {
  const affected = parseAdvisory({
    id: 'TEST-1',
    modified: '2024-01-01T00:00:00Z',
    affected: [
      {
        package: { ecosystem: 'npm', name: 'p' },
        versions,
        ranges: ranges.map((events) => ({
          type,
          ...(type === 'GIT' ? { repo: 'https://example.com/r.git' } : {}),
          events,
        })),
      },
    ],
  }).affected[0];
  assert.ok(affected);
  return affected;
}

const affectedAt = (a: Affected, v: string): boolean => isAffected(a, v, numeric).affected;

describe('parseAdvisory on published records', () => {
  it('reads a GHSA record for an npm package (semver, three affected entries)', () => {
    const advisory = parseAdvisory(fixture('GHSA-c2qf-rxjj-qqgw.json'));
    assert.equal(advisory.id, 'GHSA-c2qf-rxjj-qqgw');
    assert.deepEqual(advisory.aliases, ['CVE-2022-25883']);
    assert.equal(advisory.modified, '2023-07-10T22:57:56Z');
    assert.equal(advisory.published, '2023-06-21T06:30:28Z');
    assert.equal(advisory.withdrawn, null);
    assert.equal(advisory.summary, 'semver vulnerable to Regular Expression Denial of Service');
    assert.deepEqual(advisory.severity, [
      { type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L' },
    ]);
    assert.deepEqual(advisory.ratings, ['MODERATE']);
    assert.equal(advisory.affected.length, 3);
    assert.deepEqual(advisory.affected[0]?.package, {
      ecosystem: 'npm',
      base: 'npm',
      release: null,
      name: 'semver',
      purl: null,
    });
    assert.deepEqual(advisory.affected[2]?.ranges, [
      {
        type: 'ECOSYSTEM',
        repo: null,
        events: [
          { kind: 'introduced', version: '0' },
          { kind: 'fixed', version: '5.7.2' },
        ],
      },
    ]);
    assert.equal(advisory.references.length, 12);
    assert.deepEqual(advisory.references[0], {
      type: 'ADVISORY',
      url: 'https://nvd.nist.gov/vuln/detail/CVE-2022-25883',
    });
  });

  it('reads a GHSA record for a PyPI package (urllib3)', () => {
    const advisory = parseAdvisory(fixture('GHSA-v845-jxx5-vc9f.json'));
    assert.equal(advisory.id, 'GHSA-v845-jxx5-vc9f');
    assert.deepEqual(
      advisory.affected.map((a) => [a.package?.ecosystem, a.package?.name]),
      [
        ['PyPI', 'urllib3'],
        ['PyPI', 'urllib3'],
      ],
    );
    assert.ok(advisory.details?.startsWith("urllib3 doesn't treat the `Cookie` HTTP header special"));
    assert.ok(advisory.details?.endsWith('* Not using the `Cookie` header.'));
  });

  it('reads an Ubuntu USN record: release suffix, purl, versions list, ecosystem_specific', () => {
    const advisory = parseAdvisory(fixture('USN-2169-2.json'));
    assert.equal(advisory.id, 'USN-2169-2');
    assert.deepEqual(advisory.aliases, []);
    assert.equal(advisory.published, '2014-04-23T04:14:10.574690Z');
    const [affected] = advisory.affected;
    assert.deepEqual(affected?.package, {
      ecosystem: 'Ubuntu:14.04:LTS',
      base: 'Ubuntu',
      release: '14.04:LTS',
      name: 'python-django',
      purl: 'pkg:deb/ubuntu/python-django@1.6.1-2ubuntu0.2?arch=source&distro=trusty',
    });
    assert.deepEqual(affected?.versions, [
      '1.5.4-1ubuntu1',
      '1.6-1',
      '1.6.1-1',
      '1.6.1-2',
      '1.6.1-2ubuntu0.1',
    ]);
    assert.deepEqual(affected?.ratings, [], 'binaries and availability are no rating');
  });

  it('accepts a parsed value as well as text, and ignores unknown fields', () => {
    const record = JSON.parse(fixture('GHSA-xvch-5gv4-984h.json')) as Record<string, unknown>;
    const extended = { ...record, x_future_field: { anything: [1, 2] }, credits: [{ name: 'someone' }] };
    assert.deepEqual(parseAdvisory(extended), parseAdvisory(fixture('GHSA-xvch-5gv4-984h.json')));
  });

  it('reads withdrawn, Debian urgency and package-level severity; drops unknown severity types', () => {
    const advisory = parseAdvisory({
      id: 'DSA-0000-1',
      modified: '2024-05-01T10:00:00Z',
      withdrawn: '2024-05-02T00:00:00Z',
      severity: [
        { type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' },
        { type: 'CVSS_V9', score: 'whatever' },
      ],
      affected: [
        {
          package: { ecosystem: 'Debian:12', name: 'openssl', purl: 'pkg:deb/debian/openssl' },
          severity: [{ type: 'CVSS_V2', score: 'AV:N/AC:L/Au:N/C:P/I:P/A:P' }],
          ecosystem_specific: { urgency: 'medium', binaries: ['libssl3'] },
          database_specific: { severity: 7 },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.13-1~deb12u1' }] }],
        },
      ],
    });
    assert.equal(advisory.withdrawn, '2024-05-02T00:00:00Z');
    assert.deepEqual(
      advisory.severity.map((s) => s.type),
      ['CVSS_V3'],
    );
    const [affected] = advisory.affected;
    assert.deepEqual(affected?.severity, [{ type: 'CVSS_V2', score: 'AV:N/AC:L/Au:N/C:P/I:P/A:P' }]);
    assert.deepEqual(affected?.ratings, ['medium'], 'a number under severity is no rating word');
    assert.equal(affected?.package?.release, '12');
  });

  it('truncates oversized details', () => {
    const advisory = parseAdvisory({
      id: 'X-1',
      modified: '2024-01-01T00:00:00Z',
      details: 'd'.repeat(MAX_DETAILS_CHARS * 3),
    });
    assert.equal(advisory.details?.length, MAX_DETAILS_CHARS);
    assert.ok(advisory.details?.endsWith('…'));
  });
});

describe('parseAdvisory on malformed records', () => {
  const valid = { id: 'X-1', modified: '2024-01-01T00:00:00Z' };
  const cases: [string, unknown, string | undefined][] = [
    ['not JSON', '{"id":', undefined],
    ['not an object', '[1,2]', undefined],
    ['missing id', { modified: valid.modified }, 'id'],
    ['missing modified', { id: 'X-1' }, 'modified'],
    ['bad timestamp', { ...valid, published: '2024-01-01' }, 'published'],
    ['aliases not strings', { ...valid, aliases: [1] }, 'aliases.0'],
    [
      'package without name',
      { ...valid, affected: [{ package: { ecosystem: 'npm' } }] },
      'affected.0.package.name',
    ],
    [
      'unknown range type',
      { ...valid, affected: [{ ranges: [{ type: 'RANGE', events: [{ introduced: '0' }] }] }] },
      'affected.0.ranges.0.type',
    ],
    [
      'event with two kinds',
      {
        ...valid,
        affected: [{ ranges: [{ type: 'SEMVER', events: [{ introduced: '0', fixed: '1.0.0' }] }] }],
      },
      'affected.0.ranges.0.events.0',
    ],
    [
      'range without introduced',
      { ...valid, affected: [{ ranges: [{ type: 'SEMVER', events: [{ fixed: '1.0.0' }] }] }] },
      'affected.0.ranges.0.events',
    ],
    [
      'fixed and last_affected in one range',
      {
        ...valid,
        affected: [
          {
            ranges: [
              {
                type: 'SEMVER',
                events: [{ introduced: '0' }, { fixed: '1.0.0' }, { last_affected: '0.9.0' }],
              },
            ],
          },
        ],
      },
      'affected.0.ranges.0.events',
    ],
    [
      'GIT range without repo',
      { ...valid, affected: [{ ranges: [{ type: 'GIT', events: [{ introduced: '0' }] }] }] },
      'affected.0.ranges.0.repo',
    ],
    ['severity without score', { ...valid, severity: [{ type: 'CVSS_V3' }] }, 'severity.0.score'],
  ];
  for (const [name, input, field] of cases) {
    it(`${name} → OsvError naming ${field ?? 'the record'}`, () => {
      assert.throws(
        () => parseAdvisory(input),
        (error: unknown) =>
          error instanceof OsvError && error.field === field && error.code === 'OSV_INVALID_RECORD',
      );
    });
  }

  it('throws nothing but OsvError for hostile input', () => {
    for (const input of [null, 42, '', 'null', { id: 'x', modified: 5 }, Object.create(null) as unknown]) {
      assert.throws(() => parseAdvisory(input), OsvError);
    }
  });
});

describe('splitEcosystem', () => {
  it('splits at the first colon', () => {
    assert.deepEqual(splitEcosystem('Debian:12'), { base: 'Debian', release: '12' });
    assert.deepEqual(splitEcosystem('Alpine:v3.19'), { base: 'Alpine', release: 'v3.19' });
    assert.deepEqual(splitEcosystem('Ubuntu:22.04:LTS'), { base: 'Ubuntu', release: '22.04:LTS' });
    assert.deepEqual(splitEcosystem('Ubuntu:Pro:18.04:LTS'), { base: 'Ubuntu', release: 'Pro:18.04:LTS' });
    assert.deepEqual(splitEcosystem('PyPI'), { base: 'PyPI', release: null });
  });
});

describe('isAffected (OSV evaluation)', () => {
  it('introduced/fixed: [introduced, fixed)', () => {
    const a = entry([[{ introduced: '1.0' }, { fixed: '1.5' }]]);
    assert.equal(affectedAt(a, '0.9'), false);
    assert.deepEqual(isAffected(a, '1.0', numeric), { affected: true, fixed: '1.5' });
    assert.equal(affectedAt(a, '1.4.9'), true);
    assert.deepEqual(isAffected(a, '1.5', numeric), { affected: false, fixed: null });
    assert.equal(affectedAt(a, '2.0'), false);
  });

  it('introduced 0 without fix: every version, unfixed', () => {
    const a = entry([[{ introduced: '0' }]]);
    for (const v of ['0', '0.0.1', '1.0', '999.1'])
      assert.deepEqual(isAffected(a, v, numeric), { affected: true, fixed: null });
  });

  it('last_affected is inclusive and yields no fix', () => {
    const a = entry([[{ introduced: '0' }, { last_affected: '2.1.214' }]]);
    assert.deepEqual(isAffected(a, '2.1.214', numeric), { affected: true, fixed: null });
    assert.equal(affectedAt(a, '2.1.215'), false);
  });

  it('sorts events before walking them', () => {
    const a = entry([
      [{ fixed: '3.2.5' }, { introduced: '3.0.0' }, { fixed: '1.0.2' }, { introduced: '1.0.0' }],
    ]);
    assert.equal(affectedAt(a, '1.0.1'), true);
    assert.equal(affectedAt(a, '2.0.0'), false);
    assert.deepEqual(isAffected(a, '3.1', numeric), { affected: true, fixed: '3.2.5' });
    assert.equal(affectedAt(a, '3.2.5'), false);
  });

  it('limit bounds the range from above; * is infinity; several limits widen', () => {
    const a = entry([[{ introduced: '1.0' }, { limit: '2.0' }]]);
    assert.equal(affectedAt(a, '1.9'), true);
    assert.equal(affectedAt(a, '2.0'), false);
    const star = entry([[{ introduced: '1.0' }, { limit: '*' }]]);
    assert.equal(affectedAt(star, '99'), true);
    const two = entry([[{ introduced: '1.0' }, { fixed: '1.5' }, { limit: '1.2' }, { limit: '1.4' }]]);
    assert.equal(affectedAt(two, '1.3'), true, 'below one of the limits');
    assert.equal(affectedAt(two, '1.4'), false, 'below none');
  });

  it('OR-s multiple ranges and reports the fix of the range that matched', () => {
    const a = entry([
      [{ introduced: '7.0.0' }, { fixed: '7.5.2' }],
      [{ introduced: '6.0.0' }, { fixed: '6.3.1' }],
      [{ introduced: '0' }, { fixed: '5.7.2' }],
    ]);
    assert.deepEqual(isAffected(a, '6.2.0', numeric), { affected: true, fixed: '6.3.1' });
    assert.deepEqual(isAffected(a, '7.4.0', numeric), { affected: true, fixed: '7.5.2' });
    assert.deepEqual(isAffected(a, '5.0.0', numeric), { affected: true, fixed: '5.7.2' });
    assert.equal(affectedAt(a, '5.7.2'), false);
    assert.equal(affectedAt(a, '6.3.1'), false);
    assert.equal(affectedAt(a, '8.0.0'), false);
  });

  it('an explicit versions list matches exactly, even outside the ranges', () => {
    const a = entry([[{ introduced: '1.0' }, { fixed: '1.5' }]], ['0.5', '2.0-beta']);
    assert.deepEqual(isAffected(a, '0.5', numeric), { affected: true, fixed: '1.5' });
    assert.equal(affectedAt(a, '0.50'), false, 'string equality, not version equality');
    assert.deepEqual(isAffected(a, '2.0-beta', null), { affected: true, fixed: null });
    assert.deepEqual(
      isAffected(a, '1.2', null),
      { affected: false, fixed: null },
      'no comparator: versions only',
    );
  });

  it('ignores GIT ranges for package versions', () => {
    const a = entry([[{ introduced: '0' }, { fixed: 'abc123' }]], [], 'GIT');
    assert.deepEqual(isAffected(a, '1.0', numeric), { affected: false, fixed: null });
  });
});

describe('matchAdvisory', () => {
  const compareFor = (): CompareVersions => numeric;

  it('finds the affected entry and fix of a real npm advisory', () => {
    const advisory = parseAdvisory(fixture('GHSA-xvch-5gv4-984h.json'));
    const match = matchAdvisory(
      advisory,
      { ecosystem: 'npm', name: 'minimist', version: '1.2.5' },
      compareFor,
    );
    assert.equal(match?.fixed, '1.2.6');
    assert.equal(match?.affected, advisory.affected[0]);
    assert.equal(
      matchAdvisory(advisory, { ecosystem: 'npm', name: 'minimist', version: '0.2.1' }, compareFor)?.fixed,
      '0.2.4',
    );
    assert.equal(
      matchAdvisory(advisory, { ecosystem: 'npm', name: 'minimist', version: '1.2.6' }, compareFor),
      null,
    );
    assert.equal(
      matchAdvisory(advisory, { ecosystem: 'npm', name: 'minimist2', version: '1.2.5' }, compareFor),
      null,
    );
    assert.equal(
      matchAdvisory(advisory, { ecosystem: 'PyPI', name: 'minimist', version: '1.2.5' }, compareFor),
      null,
    );
  });

  it('compares PyPI names in normal form', () => {
    const advisory = parseAdvisory(fixture('GHSA-v845-jxx5-vc9f.json'));
    assert.equal(
      matchAdvisory(advisory, { ecosystem: 'PyPI', name: 'URLLib3', version: '2.0.4' }, compareFor)?.fixed,
      '2.0.6',
    );
    assert.equal(
      matchAdvisory(advisory, { ecosystem: 'PyPI', name: 'urllib3', version: '1.26.16' }, compareFor)?.fixed,
      '1.26.17',
    );
    assert.equal(
      matchAdvisory(advisory, { ecosystem: 'PyPI', name: 'urllib3', version: '2.0.6' }, compareFor),
      null,
    );
  });

  it('applies release-scoped entries only to that release', () => {
    const advisory = parseAdvisory(fixture('USN-2169-2.json'));
    const pkg = { ecosystem: 'Ubuntu', name: 'python-django', version: '1.6.1-2' };
    // No Ubuntu comparator: the explicit versions list decides.
    const none = (): undefined => undefined;
    assert.ok(matchAdvisory(advisory, { ...pkg, release: '14.04' }, none));
    assert.ok(matchAdvisory(advisory, { ...pkg, release: '14.04:LTS' }, none));
    assert.equal(matchAdvisory(advisory, { ...pkg, release: '22.04' }, none), null);
    assert.equal(matchAdvisory(advisory, pkg, none), null, 'a release-scoped entry needs a release');
    assert.equal(
      matchAdvisory(advisory, { ...pkg, version: '1.6.1-2ubuntu0.2', release: '14.04' }, none),
      null,
    );

    const debian = parseAdvisory({
      id: 'DEBIAN-CVE-0000-0001',
      modified: '2024-01-01T00:00:00Z',
      affected: [
        {
          package: { ecosystem: 'Debian:11', name: 'zlib' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.2' }] }],
        },
        {
          package: { ecosystem: 'Debian:12', name: 'zlib' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.3' }] }],
        },
        {
          package: { ecosystem: 'Alpine:v3.19', name: 'zlib' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }],
        },
      ],
    });
    const zlib = { ecosystem: 'Debian', name: 'zlib', version: '1.2.5' };
    assert.equal(matchAdvisory(debian, { ...zlib, release: '11' }, compareFor), null);
    assert.deepEqual(matchAdvisory(debian, { ...zlib, release: '12' }, compareFor)?.fixed, '1.3');
    assert.deepEqual(
      matchAdvisory(
        debian,
        { ecosystem: 'Alpine', release: '3.19', name: 'zlib', version: '1.3' },
        compareFor,
      )?.fixed,
      null,
    );
  });

  it('an entry without release applies to every release', () => {
    const advisory = parseAdvisory({
      id: 'X-2',
      modified: '2024-01-01T00:00:00Z',
      affected: [
        {
          package: { ecosystem: 'Debian', name: 'curl' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '8.0' }] }],
        },
      ],
    });
    assert.equal(
      matchAdvisory(
        advisory,
        { ecosystem: 'Debian', release: '12', name: 'curl', version: '7.88' },
        compareFor,
      )?.fixed,
      '8.0',
    );
  });

  it('never matches a withdrawn advisory', () => {
    const record = JSON.parse(fixture('GHSA-xvch-5gv4-984h.json')) as Record<string, unknown>;
    const advisory = parseAdvisory({ ...record, withdrawn: '2024-01-01T00:00:00Z' });
    assert.equal(
      matchAdvisory(advisory, { ecosystem: 'npm', name: 'minimist', version: '1.2.5' }, compareFor),
      null,
    );
  });
});
