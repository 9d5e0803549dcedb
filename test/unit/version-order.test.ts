/**
 * Version order per OSV ecosystem (`src/scanning/versions/`): every ordered list is checked over all pairs in both
 * directions, so each case also checks antisymmetry; Debian order is checked against the real `dpkg`.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  compareVersions,
  isValidVersion,
  VersionError,
  type Ecosystem,
} from '../../src/scanning/versions/index.ts';
import { rpmvercmp } from '../../src/scanning/versions/rpm.ts';
import { skipOrFail } from '../helpers/skip.ts';

/** Asserts that `versions` is strictly ascending: every earlier one is below every later one, and vice versa. */
function assertAscending(ecosystem: Ecosystem, versions: readonly string[]): void {
  for (let i = 0; i < versions.length; i++) {
    const a = versions[i]!;
    assert.equal(compareVersions(ecosystem, a, a), 0, `${a} == ${a}`);
    for (let j = i + 1; j < versions.length; j++) {
      const b = versions[j]!;
      assert.equal(compareVersions(ecosystem, a, b), -1, `${ecosystem}: ${a} < ${b}`);
      assert.equal(compareVersions(ecosystem, b, a), 1, `${ecosystem}: ${b} > ${a}`);
    }
  }
}

/** Asserts that all of `versions` are the same version, in both directions. */
function assertSame(ecosystem: Ecosystem, ...versions: string[]): void {
  for (const a of versions) {
    for (const b of versions) assert.equal(compareVersions(ecosystem, a, b), 0, `${ecosystem}: ${a} == ${b}`);
  }
}

/** Asserts that `version` is refused with a VersionError quoting it, from either argument position. */
function assertRefused(ecosystem: Ecosystem, version: string, valid: string): void {
  assert.equal(
    isValidVersion(ecosystem, version),
    false,
    `${ecosystem}: ${JSON.stringify(version)} is invalid`,
  );
  for (const args of [
    [version, valid],
    [valid, version],
  ] as const) {
    assert.throws(
      () => compareVersions(ecosystem, args[0], args[1]),
      (err: unknown) => err instanceof VersionError && err.message.includes(JSON.stringify(version)),
      `${ecosystem}: ${JSON.stringify(version)} throws VersionError`,
    );
  }
}

/** Strings no ecosystem accepts: empty, whitespace, control characters, absurd length. */
const GARBAGE = ['', ' ', '\n', '\u0000', 'a b', '1.0\u0000', '1'.repeat(600), '\u00e9', '1.0 2'];

describe('Debian / Ubuntu (dpkg order)', () => {
  const HARD_CASES = [
    '0.9',
    '1.0~~',
    '1.0~~a',
    '1.0~',
    '1.0~beta1',
    '1.0~rc1',
    '1.0~rc1+dfsg',
    '1.0',
    '1.0-0.1',
    '1.0-1~bpo12+1',
    '1.0-1',
    '1.0-1+b1',
    '1.0-1+deb12u1',
    '1.0-1.1',
    '1.0-2',
    '1.0-10',
    '1.0a',
    '1.0+dfsg',
    '1.0+dfsg-1',
    '1.0.1',
    '1.2-3-4',
    '1.10',
    '1:0.1',
    '1:0.1-1',
    '2:0.0.1',
  ];

  it('orders tildes, letters, revisions and epochs as dpkg does', () => {
    assertAscending('Debian', HARD_CASES);
    assertAscending('Ubuntu', [
      '2.31-0ubuntu9',
      '2.31-0ubuntu9.2',
      '2.31-0ubuntu9.10',
      '2.31-0ubuntu10',
      '2.31-1',
    ]);
    // An upstream "+dfsg" repack is newer than the same upstream version with any Debian revision.
    assert.equal(compareVersions('Debian', '1.0+dfsg', '1.0-1'), 1);
    assert.equal(compareVersions('Debian', '1.0+dfsg', '1.0-99'), 1);
    // Stable security updates sort between the stable version and the next Debian revision.
    assertAscending('Debian', ['2.36-9', '2.36-9+deb12u1', '2.36-9+deb12u10', '2.36-10']);
  });

  it('treats a missing epoch as 0 and a missing revision as equal to -0', () => {
    assertSame('Debian', '1.0', '0:1.0', '1.0-0', '0:1.0-0', '00:1.0-00', '1.00', '01.0', ' 1.0 ');
    // The revision is split at the LAST hyphen, so these differ only in the revision.
    assert.equal(compareVersions('Debian', '1.0-2-1', '1.0-2-0'), 1);
    assert.equal(compareVersions('Debian', '1.0-2-0', '1.0-3'), 1);
    // Digit runs are integers of any size.
    assert.equal(compareVersions('Debian', '1.99999999999999999999', '1.100000000000000000000'), -1);
  });

  it('refuses what dpkg refuses or warns about', () => {
    for (const bad of [
      ...GARBAGE,
      'a1.0',
      '1.0-',
      ':1.0',
      'x:1.0',
      '1:',
      '-1:1.0',
      '99999999999:1.0',
      '1.0_1',
    ]) {
      assertRefused('Debian', bad, '1.0');
    }
    assertRefused('Debian', '1.0-a:b', '1.0'); // ':' is allowed in the upstream part only
    assert.equal(isValidVersion('Debian', '1:2.0:3-1'), true);
  });

  it('agrees with `dpkg --compare-versions` on every pair of installed and hand-picked versions', async (t) => {
    let installed: string[];
    try {
      installed = execFileSync('dpkg-query', ['-W', '-f=${Version}\\n'], { encoding: 'utf8' }).split('\n');
      execFileSync('dpkg', ['--compare-versions', '1', 'lt', '2']);
    } catch {
      t.skip(skipOrFail('dpkg is not installed here') || undefined);
      return;
    }
    const unique = [...new Set(installed.filter((v) => v !== ''))].sort();
    // The awkward ones first (epochs, tildes, plus signs), then an even spread of the rest.
    const pick = (re: RegExp, n: number): string[] => unique.filter((v) => re.test(v)).slice(0, n);
    const chosen = new Set([...pick(/:/, 6), ...pick(/~/, 8), ...pick(/\+/, 6)]);
    const rest = unique.filter((v) => !chosen.has(v));
    for (let i = 0; chosen.size < 30 && i < rest.length; i += Math.max(1, Math.floor(rest.length / 10))) {
      chosen.add(rest[i]!);
    }
    const versions = [...chosen, ...HARD_CASES];
    assert.ok(versions.length >= 40, `${versions.length} versions to compare`);

    const run = promisify(execFile);
    const dpkgSays = async (a: string, op: 'lt' | 'eq', b: string): Promise<boolean> => {
      try {
        await run('dpkg', ['--compare-versions', a, op, b]);
        return true;
      } catch (err) {
        if ((err as { code?: unknown }).code === 1) return false;
        throw err;
      }
    };
    const pairs: [string, string][] = [];
    for (let i = 0; i < versions.length; i++) {
      for (let j = i + 1; j < versions.length; j++) pairs.push([versions[i]!, versions[j]!]);
    }
    const disagreements: string[] = [];
    // A few dpkg processes at a time: the machine may be busy.
    for (let k = 0; k < pairs.length; k += 8) {
      await Promise.all(
        pairs.slice(k, k + 8).map(async ([a, b]) => {
          const ours = compareVersions('Debian', a, b);
          const lt = await dpkgSays(a, 'lt', b);
          const eq = lt ? false : await dpkgSays(a, 'eq', b);
          const theirs = lt ? -1 : eq ? 0 : 1;
          if (ours !== theirs) disagreements.push(`${a} vs ${b}: ours ${ours}, dpkg ${theirs}`);
        }),
      );
    }
    assert.deepEqual(disagreements, [], `compared ${pairs.length} pairs`);
  });
});

describe('Alpine (apk-tools order)', () => {
  it('orders suffixes and the -r revision', () => {
    assertAscending('Alpine', [
      '1.2.3_alpha',
      '1.2.3_alpha1',
      '1.2.3_alpha2',
      '1.2.3_beta1',
      '1.2.3_pre1',
      '1.2.3_rc1-r0',
      '1.2.3_rc1-r1',
      '1.2.3_rc2',
      '1.2.3',
      '1.2.3-r0',
      '1.2.3-r1',
      '1.2.3-r10',
      '1.2.3_cvs',
      '1.2.3_svn',
      '1.2.3_git',
      '1.2.3_hg',
      '1.2.3_p1-r0',
      '1.2.3_p2',
      '1.2.3_p10',
      '1.2.3a',
      '1.2.3b-r1',
      '1.2.3.1',
      '1.2.4_rc1',
      '1.2.4',
      '1.10',
    ]);
    assertAscending('Alpine', ['0.1.0_alpha_pre2', '0.1.0_alpha', '0.1.0_alpha_p1', '0.1.0_beta']);
    assertAscending('Alpine', ['1.0', '1.0-r0', '1.0~abc-r0', '1.0~abd', '1.0_p1', '1.0a', '1.0.1']);
  });

  it('compares zero-led components as text and the first component as an integer', () => {
    assertAscending('Alpine', ['1.001', '1.01', '1.010', '1.02', '1.1', '1.2', '1.10']);
    assertSame('Alpine', '006', '6');
    assert.equal(compareVersions('Alpine', '1.0.0_pre20191002222144-r0', '1.0.0_pre20210530193627-r0'), -1);
  });

  it('matches the comparisons in apk-tools test/version.data', () => {
    // A selection of the valid lines of alpinelinux/apk-tools test/version.data ("a op b").
    const lines = `2.34 > 0.1.0_alpha
      0.1.0_alpha2 > 0.1.0_alpha
      1.1 > 1.1_alpha1
      1.2 < 1.3_alpha
      0.8_beta4 < 4.8-r1
      3.10.18-r1 > 2.3.0b-r1
      2.3.0b-r1 < 2.3.0b-r2
      3.1_p16 < 3.1_p17
      1.06-r6 < 006
      006 > 1.0.0
      2.59 < 20050718-r1
      3.9.8-r5 > 2.01.01_alpha10
      1.00_beta2 > 0.9.2
      1.02.07 < 1.02.10-r1
      20060720 > 3.0.20060720
      2.5.1-r8 < 2.5.1a-r1
      1.3.5-r10 > 1.3.5-r8
      20040401 > 2.0.0_rc3-r1
      3.0.0-r2 < 021109-r3
      3.9_pre20060124 > 0.01
      0.10.0 < 0.10.1_rc1
      1.1a < 1.3a
      0.15.1b-r2 > 0.15.1b
      22.7-r1 < 22.7.3-r1
      2.10.1 > 02.08.01b
      1.6d > 1.2.07.8
      1.2.07.8 < 1.2.12.04
      1.07-r1 < 1.07.5
      0.1_pre20060810 < 0.1_pre20060817
      0.59s-r11 < 0.65
      0.20070118 < 0.20070207_rc1
      4.5_p1-r1 > 4.5_p1
      0.9.8c-r1 < 0.9.8d
      013 < 014-r1
      1.8.5 < 1.8.5_p2
      0.98 < 1.00
      2.9.11_pre20051101-r3 > 2.9.11_pre20051101
      1.6.8_p12-r1 > 1.6.8_p9-r2
      0.9.28-r2 < 0.9.28.1
      087-r1 < 103
      2.12r-r4 < 2.12r-r5
      7.0.17 < 7.0.174
      1.3_pre1-r1 < 1.3.2
      1.0_p10-r0 > 1.0_p9-r0
      6.0_pre1 < 6.0
      6.1_p1 > 6.1
      2.16.1-r3 = 2.16.1-r3`;
    for (const line of lines.split('\n')) {
      const [a, op, b] = line.trim().split(' ') as [string, string, string];
      const expected = op === '<' ? -1 : op === '>' ? 1 : 0;
      assert.equal(compareVersions('Alpine', a, b), expected, line.trim());
      assert.equal(compareVersions('Alpine', b, a), -expected || 0, `reverse of ${line.trim()}`);
    }
  });

  it('refuses what is not an apk version', () => {
    for (const bad of [
      ...GARBAGE,
      '1.0bc',
      '23_foo',
      '1.0-1',
      '1.0-r',
      '1..2',
      '1.',
      '.1',
      'v1.0',
      '1.0_rc1.2',
      '1a2',
      '1.0a.1',
      '1.0_',
      '1.0_foo',
      '1.0~',
      '1.0~xyz',
      '1.0-r1~ab',
      '1.0-r1-r2',
    ]) {
      assertRefused('Alpine', bad, '1.0');
    }
  });
});

describe('npm and Go (SemVer 2.0.0)', () => {
  it('orders pre-releases as semver.org §11 does', () => {
    const spec = [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '2.0.0',
      '2.1.0',
      '2.1.1',
    ];
    assertAscending('npm', spec);
    assertAscending(
      'Go',
      spec.map((v) => `v${v}`),
    );
    assertAscending('npm', ['1.0.0-0', '1.0.0-1', '1.0.0-10', '1.0.0-1a', '1.0.0-a', '1.0.0-a.0', '1.0.0-b']);
    assertAscending('npm', ['9.0.0', '10.0.0', '18446744073709551616.0.0', '18446744073709551617.0.0']);
  });

  it('ignores build metadata and a leading v', () => {
    assertSame('npm', '1.0.0', '1.0.0+build.1', '1.0.0+20130313144700', 'v1.0.0', 'v1.0.0+exp.sha.5114f85');
    assertSame('Go', 'v2.0.0+incompatible', 'v2.0.0');
    assertSame('npm', '1.0.0-rc.1+a', '1.0.0-rc.1+b');
  });

  it('orders Go pseudo-versions before the release they precede', () => {
    assertAscending('Go', [
      'v0.0.0-20190101000000-0123456789ab',
      'v0.0.0-20210101000000-abcdefabcdef',
      'v0.1.0',
      'v1.2.3',
      'v1.2.4-0.20220101000000-abcdefabcdef',
      'v1.2.4-pre',
      'v1.2.4-pre.0.20220101000000-abcdefabcdef',
      'v1.2.4',
      'v3.0.0+incompatible',
    ]);
  });

  it('refuses what is not SemVer', () => {
    for (const bad of [
      ...GARBAGE,
      '1',
      '1.0',
      '01.0.0',
      '1.0.0-01',
      '1.0.0-',
      '1.0.0+',
      '1.0.0-a..b',
      'V1.0.0',
    ]) {
      assertRefused('npm', bad, '1.0.0');
    }
    assertRefused('Go', '1.2.3.4', 'v1.0.0');
  });
});

describe('PyPI (PEP 440)', () => {
  it('orders the full example from "Summary of permitted suffixes and relative ordering"', () => {
    assertAscending('PyPI', [
      '1.0.dev456',
      '1.0a1',
      '1.0a2.dev456',
      '1.0a12.dev456',
      '1.0a12',
      '1.0b1.dev456',
      '1.0b2',
      '1.0b2.post345.dev456',
      '1.0b2.post345',
      '1.0rc1.dev456',
      '1.0rc1',
      '1.0',
      '1.0+abc.5',
      '1.0+abc.7',
      '1.0+5',
      '1.0.post456.dev34',
      '1.0.post456',
      '1.0.15',
      '1.1.dev1',
    ]);
  });

  it('orders epochs, releases and local labels', () => {
    assertAscending('PyPI', [
      '1.0',
      '1.0.post0',
      '1.0.post1',
      '1.1',
      '1.10',
      '2013.10',
      '1!0.1',
      '1!1.0',
      '2!0.0.1',
    ]);
    assertAscending('PyPI', [
      '1.0',
      '1.0+ubuntu1',
      '1.0+ubuntu1.1',
      '1.0+ubuntu2',
      '1.0+ubuntu2.0',
      '1.0+1',
      '1.0+1.a',
    ]);
    // Alphanumeric local segments compare as text, so "ubuntu10" sorts before "ubuntu2" (as in packaging.version).
    assert.equal(compareVersions('PyPI', '1.0+ubuntu10', '1.0+ubuntu2'), -1);
  });

  it('normalises spellings, implicit numbers and zeros', () => {
    assertSame('PyPI', '1.0', '1.0.0', '1', 'v1.0', '0!1.0', ' 1.0 ', '1.0.0.0.0');
    assertSame('PyPI', '1.0a1', '1.0alpha1', '1.0-a1', '1.0_A_1', '1.0.a.1', '1.0A1');
    assertSame('PyPI', '1.0b0', '1.0b', '1.0beta', '1.0-beta-0');
    assertSame('PyPI', '1.0rc1', '1.0c1', '1.0pre1', '1.0preview1', '1.0-RC-1');
    assertSame('PyPI', '1.0.post1', '1.0-1', '1.0post1', '1.0.rev1', '1.0-r1', '1.0_post_1');
    assertSame('PyPI', '1.0.post0', '1.0.post', '1.0-post');
    assertSame('PyPI', '1.0.dev0', '1.0.dev', '1.0-dev', '1.0dev0');
    assertSame('PyPI', '1.0+ubuntu-1', '1.0+ubuntu.1', '1.0+UBUNTU_1');
    // A post-release is never equal to the release, even post0.
    assert.equal(compareVersions('PyPI', '1.0', '1.0.post0'), -1);
    assert.equal(compareVersions('PyPI', '1.0+0', '1.0'), 1);
  });

  it("agrees with packaging.version (pip's parser) on every pair and on validity", async (t) => {
    const versions = [
      '1.0.dev456',
      '1.0a1',
      '1.0a2.dev456',
      '1.0B2',
      '1.0b2.post345.dev456',
      '1.0rc1',
      '1.0c2',
      '1.0pre3',
      '1.0preview4',
      '1.0',
      '1.0.0',
      '1.0.post0',
      '1.0-1',
      '1.0.rev2',
      '1.0+abc.5',
      '1.0+ABC.5',
      '1.0+5',
      '1.0+ubuntu10',
      '1.0+ubuntu2',
      '1.0+ubuntu2.0',
      '1.0.post456.dev34',
      '1.0.15',
      '1.1.dev1',
      'v2.0',
      '1!0.1',
      '2013.10.1',
      '0.0',
      '00.1',
      '1.0a',
      '1.0.dev',
      '1.0.post',
      '1.0-dev-1',
      ' 1.0 ',
      // Strings both must refuse.
      '',
      'a1',
      '1.0+',
      '1..0',
      '1.0.post1.post2',
      '1.0-dev-1-2',
      'french toast',
    ];
    const script = [
      'import json, sys',
      'from packaging.version import Version, InvalidVersion',
      'vs = json.load(sys.stdin)',
      'def parse(v):',
      '    try: return Version(v)',
      '    except InvalidVersion: return None',
      'ps = [parse(v) for v in vs]',
      'cmp = lambda a, b: (a > b) - (a < b)',
      'print(json.dumps({"valid": [p is not None for p in ps], "order": [[cmp(a, b) if a and b else None for b in ps] for a in ps]}))',
    ].join('\n');
    // The python3 on PATH, else Debian's (CI installs python3-packaging for it).
    let output: string | undefined;
    for (const python of ['python3', '/usr/bin/python3']) {
      try {
        output = execFileSync(python, ['-c', script], { input: JSON.stringify(versions), encoding: 'utf8' });
        break;
      } catch {
        // try the next one
      }
    }
    if (output === undefined) {
      const reason = skipOrFail(
        'python3 with the packaging module is not available here (python3-packaging)',
      );
      t.skip(reason || undefined);
      return;
    }
    const theirs = JSON.parse(output) as { valid: boolean[]; order: (number | null)[][] };
    const disagreements: string[] = [];
    versions.forEach((a, i) => {
      if (isValidVersion('PyPI', a) !== theirs.valid[i]) disagreements.push(`${JSON.stringify(a)}: validity`);
      versions.forEach((b, j) => {
        const expected = theirs.order[i]![j];
        if (expected === null || expected === undefined) return;
        const ours = compareVersions('PyPI', a, b);
        if (ours !== expected) disagreements.push(`${a} vs ${b}: ours ${ours}, packaging ${expected}`);
      });
    });
    assert.deepEqual(disagreements, []);
    assert.ok(theirs.valid.filter(Boolean).length >= 30, 'most of the list is valid');
  });

  it('refuses what is not PEP 440', () => {
    for (const bad of [
      ...GARBAGE,
      'a1',
      '1.0+',
      '1.0+a..b',
      '1.0.post1.post2',
      '1.0-dev-1-2',
      '1..0',
      '!1.0',
      'french toast',
    ]) {
      assertRefused('PyPI', bad, '1.0');
    }
  });
});

describe('Maven (ComparableVersion)', () => {
  // The vectors below are those of maven-artifact's ComparableVersionTest (Maven 3.9 / 4).
  it('orders qualifiers (VERSIONS_QUALIFIER)', () => {
    assertAscending('Maven', [
      '1-alpha2snapshot',
      '1-alpha2',
      '1-alpha-123',
      '1-beta-2',
      '1-beta123',
      '1-m2',
      '1-m11',
      '1-rc',
      '1-cr2',
      '1-rc123',
      '1-SNAPSHOT',
      '1',
      '1-sp',
      '1-sp2',
      '1-sp123',
      '1-abc',
      '1-def',
      '1-pom-1',
      '1-1-snapshot',
      '1-1',
      '1-2',
      '1-123',
    ]);
  });

  it('orders numbers and strings (VERSIONS_NUMBER)', () => {
    assertAscending('Maven', [
      '2.0',
      '2.0.a',
      '2-1',
      '2.0.2',
      '2.0.123',
      '2.1.0',
      '2.1-a',
      '2.1b',
      '2.1-c',
      '2.1-1',
      '2.1.0.1',
      '2.2',
      '2.123',
      '11.a2',
      '11.a11',
      '11.b2',
      '11.b11',
      '11.m2',
      '11.m11',
      '11',
      '11.a',
      '11b',
      '11c',
      '11m',
    ]);
  });

  it('orders the pairs of testVersionComparing and the MNG regressions', () => {
    const pairs: [string, string][] = [
      ['1', '2'],
      ['1.5', '2'],
      ['1', '2.5'],
      ['1.0', '1.1'],
      ['1.0.0', '1.1'],
      ['1.0.1', '1.1'],
      ['1.1', '1.2.0'],
      ['1.0-alpha-1', '1.0'],
      ['1.0-alpha-1', '1.0-alpha-2'],
      ['1.0-alpha-1', '1.0-beta-1'],
      ['1.0-beta-1', '1.0-SNAPSHOT'],
      ['1.0-SNAPSHOT', '1.0'],
      ['1.0-alpha-1-SNAPSHOT', '1.0-alpha-1'],
      ['1.0', '1.0-1'],
      ['1.0-1', '1.0-2'],
      ['1.0.0', '1.0-1'],
      ['2.0-1', '2.0.1'],
      ['2.0.1-klm', '2.0.1-lmn'],
      ['2.0.1', '2.0.1-xyz'],
      ['2.0.1', '2.0.1-123'],
      ['2.0.1-xyz', '2.0.1-123'],
      ['0.7', '2'],
      ['0.2', '1.0.7'],
      ['6.1.0rc3', '6.1.0'], // MNG-5568
      ['6.1.0rc3', '6.1H.5-beta'],
      ['6.1.0', '6.1H.5-beta'],
      ['20190126.230843', '1234567890.12345'], // MNG-6572
      ['1234567890.12345', '123456789012345.1H.5-beta'],
      ['123456789012345.1H.5-beta', '12345678901234567890.1H.5-beta'],
      ['1-0.alpha', '1'], // MNG-6964
      ['1-0.beta', '1'],
      ['1-0.alpha', '1-0.beta'],
      ['1.0.final-redhat', '1.0-sp1-redhat'], // MNG-7714
      ['1.0.final-redhat', '1.0-sp-1-redhat'],
      ['1.0.final-redhat', '1.0-sp.1-redhat'],
    ];
    for (const x of ['abc', 'alpha', 'a', 'beta', 'b', 'def', 'milestone', 'm', 'RC']) {
      pairs.push([`1.0.0.${x}1`, `1.0.0-${x}2`]); // MNG-7644
    }
    for (const [a, b] of pairs) assertAscending('Maven', [a, b]);
    // Real release trains.
    assertAscending('Maven', ['2.12.7', '2.12.7.1', '2.13.0-rc1', '2.13.0', '2.13.4.2', '2.14.0']);
    assertAscending('Maven', ['5.3.0-M1', '5.3.0-RC1', '5.3.0', '5.3.0-1', '5.3.1']);
    assertSame('Maven', '5.3.0', '5.3.0.RELEASE');
  });

  it('treats trailing zeros, release spellings, aliases and case as equal (testVersionsEqual)', () => {
    assertSame('Maven', '1', '1.0', '1.0.0', '1-0', '1.0-0');
    assertSame('Maven', '1a', '1-a', '1.0-a', '1.0.0-a', '1.0a', '1.0.0a', '1A');
    assertSame('Maven', '1x', '1-x', '1.0-x', '1.0.0-x', '1.0x', '1.0.0x', '1X');
    assertSame('Maven', '1cr', '1rc', '1Cr', '1Rc', '1cR', '1rC');
    assertSame('Maven', '1a1', '1-alpha-1');
    assertSame('Maven', '1b2', '1-beta-2');
    assertSame('Maven', '1m3', '1-milestone-3', '1Milestone3', '1MILESTONE3');
    assertSame('Maven', '1-abcdefghijklmnopqrstuvwxyz', '1-ABCDEFGHIJKLMNOPQRSTUVWXYZ');
    assertSame(
      'Maven',
      '1',
      '1ga',
      '1release',
      '1final',
      '1GA',
      '1RELeaSE',
      '1FINAL',
      '1.0.0.RELEASE',
      '1-final',
    );
    assertSame('Maven', '1', '01', '0000000000000000001');
    assertSame('Maven', '0', '00', '0000000000000000000');
    for (const x of ['abc', 'alpha', 'a', 'beta', 'b', 'def', 'milestone', 'm', 'RC']) {
      assertSame('Maven', `2-${x}`, `2.0.${x}`, `2.0.0.${x}`); // MNG-7644
    }
  });

  it('refuses empty, blank and non-ASCII strings', () => {
    for (const bad of GARBAGE) assertRefused('Maven', bad, '1.0');
  });
});

describe('Red Hat, Rocky Linux, AlmaLinux, openSUSE, SUSE (rpm order)', () => {
  /** rpm's own rpmvercmp test table (tests/rpmvercmp.at): [a, b, expected]. */
  const RPMVERCMP_CASES: [string, string, number][] = [
    ['1.0', '1.0', 0],
    ['1.0', '2.0', -1],
    ['2.0.1', '2.0.1', 0],
    ['2.0', '2.0.1', -1],
    ['2.0.1a', '2.0.1', 1],
    ['5.5p1', '5.5p2', -1],
    ['5.5p10', '5.5p1', 1],
    ['10xyz', '10.1xyz', -1],
    ['xyz10', 'xyz10.1', -1],
    ['xyz.4', '8', -1],
    ['xyz.4', '2', -1],
    ['5.5p2', '5.6p1', -1],
    ['5.6p1', '6.5p1', -1],
    ['6.0.rc1', '6.0', 1],
    ['10b2', '10a1', 1],
    ['1.0aa', '1.0a', 1],
    ['10.0001', '10.1', 0],
    ['10.0001', '10.0039', -1],
    ['4.999.9', '5.0', -1],
    ['20101121', '20101122', -1],
    ['2_0', '2_0', 0],
    ['2.0', '2_0', 0],
    ['a+', 'a_', 0],
    ['+a', '_a', 0],
    ['_+', '+_', 0],
    ['+', '_', 0],
    ['1.0~rc1', '1.0', -1],
    ['1.0~rc1', '1.0~rc2', -1],
    ['1.0~rc1~git123', '1.0~rc1', -1],
    ['1.0^', '1.0', 1],
    ['1.0^git1', '1.0', 1],
    ['1.0^git1', '1.0^git2', -1],
    ['1.0^git1', '1.01', -1],
    ['1.0^20160101', '1.0.1', -1],
    ['1.0^20160101^git1', '1.0^20160101', 1],
    ['1.0~rc1^git1', '1.0~rc1', 1],
    ['1.0^git1~pre', '1.0^git1', -1],
    ['1.0~rc1^git1', '1.0~rc1^git1', 0],
  ];
  /** EVR strings as rpm databases and OSV advisories write them, ascending. */
  const EVR_ASCENDING = [
    '1.0~beta-1.el9',
    '1.0-1.el9',
    '1.0-1.el9_2',
    '1.0-1.el9_2.1',
    '1.0-2.el9',
    '1.0-10.el9',
    '1.0^20230101git-1.el9',
    '1.0.1-1.el9',
    '1.2.3-1',
    '1.2.3a-1',
    '2.0-0.rc1.fc39',
    '2.0-1.fc39',
    '1:0.9-1',
    '1:1.0-1',
    '2:0.1-1',
    '10:0.1-1',
  ];

  it("agrees with rpm's own rpmvercmp test table", () => {
    for (const [a, b, expected] of RPMVERCMP_CASES) {
      assert.equal(rpmvercmp(a, b), expected, `${a} vs ${b}`);
      assert.equal(rpmvercmp(b, a), -expected || 0, `${b} vs ${a}`);
    }
  });

  it('orders epoch, version and release; a missing epoch is 0, a missing release sorts first', () => {
    assertAscending('Red Hat', EVR_ASCENDING);
    assertSame('Rocky Linux', '0:1.0-1', '1.0-1', '00:1.0-1');
    assertSame('AlmaLinux', '1.0-1.el9', '1.0-1_el9', '1.00-1.el9');
    assert.equal(compareVersions('openSUSE', '1.0', '1.0-1'), -1);
    assert.equal(compareVersions('SUSE', '1.0-150500.3.3.1', '1.0-150400.3.3.1'), 1);
  });

  it('refuses what is not an EVR string', () => {
    for (const bad of ['', 'a:1.0', '1.0-', '-1', ':1.0', '1.0 -1', '1.0\n', 'x'.repeat(600)]) {
      assertRefused('Red Hat', bad, '1.0-1');
    }
    assert.equal(isValidVersion('SUSE', '3.2.1-150500.1.1'), true);
  });

  it('agrees with the real rpm (rpm.vercmp) on every pair', (t) => {
    let ok = false;
    try {
      ok =
        execFileSync('rpm', ['--eval', '%{lua: print(rpm.vercmp("1.0", "1.0~rc1"))}'], {
          encoding: 'utf8',
        }).trim() === '1';
    } catch {
      ok = false;
    }
    if (!ok) {
      t.skip(skipOrFail('rpm (with its Lua rpm.vercmp) is not installed here') || undefined);
      return;
    }
    const versions = [
      ...new Set([...EVR_ASCENDING, ...RPMVERCMP_CASES.flatMap(([a, b]) => [a, b]), '1.0^', '1.0~', '1.0~~']),
    ];
    const list = versions.map((v) => `[[${v}]]`).join(',');
    const out = execFileSync(
      'rpm',
      [
        '--eval',
        `%{lua: local v={${list}} for i=1,#v do for j=1,#v do print(rpm.vercmp(v[i],v[j])..",") end end}`,
      ],
      { encoding: 'utf8' },
    );
    const theirs = out.trim().split(',').filter(Boolean).map(Number);
    assert.equal(theirs.length, versions.length * versions.length);
    const disagreements: string[] = [];
    let k = 0;
    for (const a of versions) {
      for (const b of versions) {
        const ours = compareVersions('Red Hat', a, b);
        const rpms = Math.sign(theirs[k++]!);
        if (ours !== rpms) disagreements.push(`${a} vs ${b}: ours ${ours}, rpm ${rpms}`);
      }
    }
    assert.deepEqual(disagreements, [], `compared ${versions.length ** 2} pairs`);
  });
});

describe('compareVersions', () => {
  it('refuses an unknown ecosystem with a VersionError', () => {
    for (const eco of ['crates.io', 'toString', '', 'debian']) {
      assert.throws(() => compareVersions(eco as Ecosystem, '1.0', '1.0'), VersionError);
      assert.equal(isValidVersion(eco as Ecosystem, '1.0'), false);
    }
  });

  it('is a consistent total order on generated versions (Maven excepted: its own order has cycles)', () => {
    // A fixed linear congruential generator, so a failure is reproducible.
    let seed = 20240601;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pieces: Record<
      Exclude<Ecosystem, 'Ubuntu' | 'Go' | 'Maven' | 'Rocky Linux' | 'AlmaLinux' | 'openSUSE' | 'SUSE'>,
      string[]
    > = {
      Debian: ['0', '1', '2', '10', '.', '-', '+', '~', ':', 'a', 'z', 'dfsg', 'deb12u', 'ubuntu', 'b'],
      Alpine: ['0', '1', '2', '10', '.', '_rc', '_p', '_alpha', '_git', '-r', 'a', 'b', '~ab', '~a'],
      PyPI: ['0', '1', '2', '10', '.', '-', '_', 'a', 'b', 'rc', 'post', 'dev', '!', '+', 'local'],
      npm: ['0', '1', '2', '10', '.', '-', '+', 'a', 'beta', 'rc'],
      'Red Hat': ['0', '1', '2', '10', '.', '-', '~', '^', ':', 'a', 'b', 'el9', 'rc', '_'],
    };
    for (const [eco, parts] of Object.entries(pieces) as [Ecosystem, string[]][]) {
      const valid = new Set<string>();
      for (let n = 0; n < 40_000 && valid.size < 150; n++) {
        // SemVer needs its three numbers; the pieces then make up the pre-release and build parts.
        const core = `${random(3)}.${random(11)}.${random(3)}`;
        let v = eco === 'npm' ? (random(4) === 0 ? core : `${core}-`) : '';
        const length = 1 + random(9);
        for (let i = 0; i < length; i++) v += parts[random(parts.length)]!;
        if (isValidVersion(eco, v)) valid.add(v);
      }
      assert.ok(valid.size >= 50, `${eco}: ${valid.size} generated versions`);
      const sorted = [...valid].sort((a, b) => compareVersions(eco, a, b));
      for (let i = 0; i < sorted.length; i++) {
        for (let j = i + 1; j < sorted.length; j++) {
          const c = compareVersions(eco, sorted[i]!, sorted[j]!);
          assert.ok(c <= 0, `${eco}: sorted ${sorted[i]} before ${sorted[j]} but compare gives ${c}`);
          assert.equal(compareVersions(eco, sorted[j]!, sorted[i]!), -c || 0);
        }
      }
    }
  });

  it('throws only VersionError on hostile input and always returns -1, 0 or 1', () => {
    const ecosystems: Ecosystem[] = ['Debian', 'Ubuntu', 'Alpine', 'npm', 'PyPI', 'Go', 'Maven', 'Red Hat'];
    const nasty = [
      '1.0',
      '~',
      '-',
      '.',
      '+',
      '_',
      ':',
      '0:',
      '1:~',
      '-r',
      '1-r',
      '1!',
      '1.0.0-',
      'v',
      '1'.repeat(512),
      `${'1.'.repeat(255)}1`,
      `1.0.0-${'a.'.repeat(250)}a`,
      `1${'a1'.repeat(255)}`,
      '1.0\u{1F600}',
      '1.0\uD800',
      'constructor',
      '__proto__',
    ];
    for (const eco of ecosystems) {
      for (const a of nasty) {
        for (const b of ['1.0', '1.0.0', a]) {
          try {
            const r = compareVersions(eco, a, b);
            assert.ok(r === -1 || r === 0 || r === 1, `${eco}: ${a} vs ${b} gave ${r}`);
            assert.equal(compareVersions(eco, b, a), -r || 0, `${eco}: ${a} vs ${b} antisymmetric`);
          } catch (err) {
            assert.ok(err instanceof VersionError, `${eco}: ${a} vs ${b} threw ${String(err)}`);
          }
        }
      }
    }
  });
});
