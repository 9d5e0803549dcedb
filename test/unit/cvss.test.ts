/**
 * CVSS v3.x and v4.0 scoring (`src/scanning/cvss.ts`) against published scores, the severity bands, and the
 * choice of one severity per OSV advisory.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  advisorySeverity,
  cvss3BaseScore,
  cvss4Score,
  CvssError,
  cvssScore,
  ecosystemRating,
  severityOf,
} from '../../src/scanning/cvss.ts';
import { MACROVECTOR_SCORES } from '../../src/scanning/cvss40-tables.ts';
import { parseAdvisory } from '../../src/scanning/osv.ts';

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/osv/${name}`, import.meta.url), 'utf8');

describe('cvss3BaseScore', () => {
  // Base scores as NVD publishes them for these vectors.
  const v31: [string, number][] = [
    ['AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
    ['AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10.0],
    ['AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8],
    ['AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N', 3.1],
    ['AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1],
    ['AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H', 7.5],
    ['AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L', 5.3],
    ['AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 8.8],
    ['AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H', 8.8],
    ['AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H', 8.1],
    ['AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H', 9.9],
    ['AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H', 7.4],
    ['AV:N/AC:L/PR:N/UI:N/S:C/C:L/I:L/A:N', 7.2],
    ['AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 6.8],
    ['AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 8.8],
    ['AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H', 7.2],
    ['AV:N/AC:L/PR:N/UI:R/S:C/C:H/I:H/A:H', 9.6],
    ['AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N', 5.4],
    ['AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:N', 5.9],
    ['AV:N/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N', 0],
  ];
  for (const [metrics, score] of v31) {
    it(`CVSS:3.1/${metrics} = ${score}`, () => {
      assert.equal(cvss3BaseScore(`CVSS:3.1/${metrics}`), score);
    });
  }

  it('scores v3.0 vectors with the same formula', () => {
    assert.equal(cvss3BaseScore('CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), 9.8);
    assert.equal(cvss3BaseScore('CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N'), 6.1);
    assert.deepEqual(cvssScore('CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H'), {
      version: '3.0',
      score: 10,
    });
  });

  it('accepts temporal and environmental metrics in any order and still gives the base score', () => {
    assert.equal(
      cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C/CR:L/MAV:P'),
      9.8,
    );
    assert.equal(cvss3BaseScore('CVSS:3.1/S:U/AV:N/C:H/AC:L/I:H/PR:N/A:H/UI:N'), 9.8);
  });

  it('rejects malformed vectors with a CvssError naming the problem', () => {
    const bad: [string, RegExp][] = [
      ['AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', /prefix/],
      ['CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', /prefix/],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H', /missing base metric A/],
      ['CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', /invalid value "X" for AV/],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:L', /A given twice/],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1', /unknown metric "ZZ"/],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/', /unknown metric ""/],
      ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/AT:N', /unknown metric "AT"/],
      ['CVSS:3.1/av:n/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', /unknown metric "av"/],
    ];
    for (const [vector, reason] of bad) {
      assert.throws(
        () => cvss3BaseScore(vector),
        (error: unknown) =>
          error instanceof CvssError && error.vector === vector && reason.test(error.reason),
        vector,
      );
    }
  });
});

describe('cvss4Score', () => {
  // The examples of https://www.first.org/cvss/v4.0/examples, and common NVD/GHSA vectors with their published
  // scores.
  const v40: [string, number][] = [
    ['AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 9.3],
    ['AV:L/AC:L/AT:P/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 7.3],
    ['AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 7.7],
    ['AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U', 5.2],
    ['AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:L/VA:L/SC:N/SI:N/SA:N', 8.3],
    [
      'AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:L/VA:L/SC:N/SI:N/SA:N/CR:H/IR:L/AR:L/MAV:N/MAC:H/MVC:H/MVI:L/MVA:L',
      8.1,
    ],
    ['AV:L/AC:L/AT:N/PR:N/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N', 4.6],
    ['AV:N/AC:L/AT:N/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N', 5.1],
    ['AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N', 6.9],
    ['AV:L/AC:L/AT:N/PR:H/UI:N/VC:N/VI:N/VA:N/SC:H/SI:N/SA:N', 5.9],
    ['AV:L/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H', 9.4],
    ['AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N', 6.9],
    ['AV:N/AC:L/AT:N/PR:L/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N', 5.3],
    ['AV:N/AC:H/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 9.2],
    ['AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 9.2],
    ['AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 8.5],
    ['AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 8.7],
    ['AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N', 8.7],
    ['AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H', 10],
    ['AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N', 0],
  ];
  for (const [metrics, score] of v40) {
    it(`CVSS:4.0/${metrics} = ${score}`, () => {
      assert.equal(cvss4Score(`CVSS:4.0/${metrics}`), score);
    });
  }

  it('treats X (not defined) like an absent metric', () => {
    const base = 'CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N';
    assert.equal(cvss4Score(`${base}/E:X/CR:X/MAV:X/MSI:X/S:X/U:X`), cvss4Score(base));
    assert.equal(cvss4Score(`${base}/S:P/AU:Y/R:A/V:C/RE:H/U:Red`), 5.3, 'supplemental metrics do not score');
  });

  it('has a score for each of the 270 MacroVectors and no other', () => {
    const keys = Object.keys(MACROVECTOR_SCORES);
    assert.equal(keys.length, 270);
    for (const key of keys) {
      assert.match(key, /^[012][01](00|01|10|11|21)[012][012]$|^[012][01][012][012][012][01]$/);
      const [, , eq3, , , eq6] = key;
      assert.ok(!(eq3 === '2' && eq6 === '0'), `${key}: EQ3=2 implies EQ6=1`);
      const score = MACROVECTOR_SCORES[key] ?? NaN;
      assert.ok(score > 0 && score <= 10, key);
    }
    assert.equal(MACROVECTOR_SCORES['000000'], 10);
    assert.equal(MACROVECTOR_SCORES['212221'], 0.1);
  });

  it('rejects malformed vectors with a CvssError', () => {
    const bad = [
      'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N',
      'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:S/SA:N',
      'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:R/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N',
      'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:F',
      'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/S:U',
      'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/AV:N',
      'CVSS:3.1/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N',
      '',
    ];
    for (const vector of bad) {
      assert.throws(() => cvss4Score(vector), CvssError, vector);
    }
    assert.throws(() => cvssScore('AV:N/AC:L/Au:N/C:P/I:P/A:P'), CvssError, 'CVSS v2 is not scored');
  });
});

describe('severityOf', () => {
  it('uses the standard bands with their exact edges', () => {
    const cases: [number, string][] = [
      [0, 'none'],
      [0.1, 'low'],
      [3.9, 'low'],
      [4.0, 'medium'],
      [6.9, 'medium'],
      [7.0, 'high'],
      [8.9, 'high'],
      [9.0, 'critical'],
      [10, 'critical'],
    ];
    for (const [score, severity] of cases) assert.equal(severityOf(score), severity, String(score));
  });

  it('refuses scores outside 0..10', () => {
    for (const score of [-0.1, 10.1, NaN]) assert.throws(() => severityOf(score), RangeError);
  });
});

describe('ecosystemRating', () => {
  it('maps GHSA, Debian and Ubuntu words', () => {
    assert.equal(ecosystemRating('MODERATE'), 'medium');
    assert.equal(ecosystemRating('CRITICAL'), 'critical');
    assert.equal(ecosystemRating('unimportant'), 'low');
    assert.equal(ecosystemRating('high**'), 'high');
    assert.equal(ecosystemRating('negligible'), 'low');
    assert.equal(ecosystemRating('not yet assigned'), undefined);
    assert.equal(ecosystemRating('untriaged'), undefined);
  });
});

describe('advisorySeverity', () => {
  it('scores the CVSS v3.1 vector of a real GHSA record', () => {
    assert.deepEqual(advisorySeverity(parseAdvisory(fixture('GHSA-xvch-5gv4-984h.json'))), {
      severity: 'critical',
      score: 9.8,
      source: 'CVSS_V3',
    });
    // semver's ReDoS: 5.3 by its vector, which GHSA also rates MODERATE.
    assert.deepEqual(advisorySeverity(parseAdvisory(fixture('GHSA-c2qf-rxjj-qqgw.json'))), {
      severity: 'medium',
      score: 5.3,
      source: 'CVSS_V3',
    });
  });

  it('falls back to the ecosystem rating when there is no score', () => {
    const record = JSON.parse(fixture('GHSA-v845-jxx5-vc9f.json')) as Record<string, unknown>;
    delete record.severity;
    assert.deepEqual(advisorySeverity(parseAdvisory(record)), {
      severity: 'medium',
      score: null,
      source: 'ecosystem',
    });
  });

  it('prefers v4 over v3, skips invalid vectors, and takes the worst ecosystem rating', () => {
    const base = { id: 'X-1', modified: '2024-01-01T00:00:00Z' };
    const both = parseAdvisory({
      ...base,
      severity: [
        { type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' },
        { type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N' },
      ],
    });
    assert.deepEqual(advisorySeverity(both), { severity: 'medium', score: 5.1, source: 'CVSS_V4' });

    const broken = parseAdvisory({
      ...base,
      severity: [
        { type: 'CVSS_V4', score: 'CVSS:4.0/AV:N' },
        { type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N' },
      ],
    });
    assert.deepEqual(advisorySeverity(broken), { severity: 'low', score: 3.1, source: 'CVSS_V3' });

    const debian = parseAdvisory({
      ...base,
      affected: [
        { package: { ecosystem: 'Debian:11', name: 'zlib' }, ecosystem_specific: { urgency: 'low' } },
        { package: { ecosystem: 'Debian:12', name: 'zlib' }, ecosystem_specific: { urgency: 'high' } },
        {
          package: { ecosystem: 'Debian:13', name: 'zlib' },
          ecosystem_specific: { urgency: 'not yet assigned' },
        },
      ],
    });
    assert.deepEqual(advisorySeverity(debian), { severity: 'high', score: null, source: 'ecosystem' });

    const packageLevel = parseAdvisory({
      ...base,
      affected: [
        {
          package: { ecosystem: 'PyPI', name: 'a' },
          severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L' }],
        },
        {
          package: { ecosystem: 'PyPI', name: 'b' },
          severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H' }],
        },
      ],
    });
    assert.deepEqual(advisorySeverity(packageLevel), { severity: 'high', score: 7.5, source: 'CVSS_V3' });

    const ubuntu = parseAdvisory({ ...base, severity: [{ type: 'Ubuntu', score: 'medium' }] });
    assert.deepEqual(advisorySeverity(ubuntu), { severity: 'medium', score: null, source: 'ecosystem' });

    assert.deepEqual(advisorySeverity(parseAdvisory(base)), {
      severity: 'none',
      score: null,
      source: 'none',
    });
  });
});
