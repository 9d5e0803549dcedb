/**
 * CVSS scores from vector strings, as the FIRST specifications define them:
 * - v3.0 and v3.1 base scores (https://www.first.org/cvss/v3.1/specification-document, section 7 and appendix A;
 *   v3.0 rounds up with a plain ceiling to one decimal, v3.1 with the integer-based Roundup of appendix A);
 * - v4.0 scores (https://www.first.org/cvss/v4.0/specification-document, section 8: MacroVector lookup and
 *   interpolation), computed as FIRST's reference calculator `cvss_score.js` does, with its tables in
 *   `cvss40-tables.ts`.
 * Plus the qualitative bands and the choice of one severity for an OSV advisory.
 */
import { MACROVECTOR_SCORES, MAX_COMPOSED, MAX_SEVERITY } from './cvss40-tables.ts';
import type { Advisory } from './osv.ts';

/** A vector string that is not a valid CVSS v3.x or v4.0 vector; `reason` says what is wrong with it. */
export class CvssError extends Error {
  readonly code = 'CVSS_INVALID_VECTOR';
  constructor(
    readonly vector: string,
    readonly reason: string,
  ) {
    super(`invalid CVSS vector: ${reason}`);
    this.name = 'CvssError';
  }
}

/** The qualitative severity rating scale (v3.1 section 5, v4.0 section 6). */
export type Severity = 'none' | 'low' | 'medium' | 'high' | 'critical';

type MetricValues = Readonly<Record<string, readonly string[]>>;

const V3_BASE: MetricValues = {
  AV: ['N', 'A', 'L', 'P'],
  AC: ['L', 'H'],
  PR: ['N', 'L', 'H'],
  UI: ['N', 'R'],
  S: ['U', 'C'],
  C: ['H', 'L', 'N'],
  I: ['H', 'L', 'N'],
  A: ['H', 'L', 'N'],
};
const V3_OPTIONAL: MetricValues = {
  E: ['X', 'H', 'F', 'P', 'U'],
  RL: ['X', 'U', 'W', 'T', 'O'],
  RC: ['X', 'C', 'R', 'U'],
  CR: ['X', 'H', 'M', 'L'],
  IR: ['X', 'H', 'M', 'L'],
  AR: ['X', 'H', 'M', 'L'],
  MAV: ['X', 'N', 'A', 'L', 'P'],
  MAC: ['X', 'L', 'H'],
  MPR: ['X', 'N', 'L', 'H'],
  MUI: ['X', 'N', 'R'],
  MS: ['X', 'U', 'C'],
  MC: ['X', 'H', 'L', 'N'],
  MI: ['X', 'H', 'L', 'N'],
  MA: ['X', 'H', 'L', 'N'],
};

const V4_BASE: MetricValues = {
  AV: ['N', 'A', 'L', 'P'],
  AC: ['L', 'H'],
  AT: ['N', 'P'],
  PR: ['N', 'L', 'H'],
  UI: ['N', 'P', 'A'],
  VC: ['H', 'L', 'N'],
  VI: ['H', 'L', 'N'],
  VA: ['H', 'L', 'N'],
  SC: ['H', 'L', 'N'],
  SI: ['H', 'L', 'N'],
  SA: ['H', 'L', 'N'],
};
const V4_OPTIONAL: MetricValues = {
  E: ['X', 'A', 'P', 'U'],
  CR: ['X', 'H', 'M', 'L'],
  IR: ['X', 'H', 'M', 'L'],
  AR: ['X', 'H', 'M', 'L'],
  MAV: ['X', 'N', 'A', 'L', 'P'],
  MAC: ['X', 'L', 'H'],
  MAT: ['X', 'N', 'P'],
  MPR: ['X', 'N', 'L', 'H'],
  MUI: ['X', 'N', 'P', 'A'],
  MVC: ['X', 'H', 'L', 'N'],
  MVI: ['X', 'H', 'L', 'N'],
  MVA: ['X', 'H', 'L', 'N'],
  MSC: ['X', 'H', 'L', 'N'],
  MSI: ['X', 'S', 'H', 'L', 'N'],
  MSA: ['X', 'S', 'H', 'L', 'N'],
  S: ['X', 'N', 'P'],
  AU: ['X', 'N', 'Y'],
  R: ['X', 'A', 'U', 'I'],
  V: ['X', 'D', 'C'],
  RE: ['X', 'L', 'M', 'H'],
  U: ['X', 'Clear', 'Green', 'Amber', 'Red'],
};

/**
 * Splits `vector` after its `prefix` into metrics, checking every name and value against `base` (all required)
 * and `optional`, and that none repeats. Throws {@link CvssError}.
 */
function parseMetrics(
  vector: string,
  prefix: string,
  base: MetricValues,
  optional: MetricValues,
): Map<string, string> {
  const metrics = new Map<string, string>();
  const parts = vector.slice(prefix.length).split('/');
  for (const part of parts) {
    const colon = part.indexOf(':');
    const name = colon < 0 ? part : part.slice(0, colon);
    const value = colon < 0 ? '' : part.slice(colon + 1);
    const allowed = Object.hasOwn(base, name)
      ? base[name]
      : Object.hasOwn(optional, name)
        ? optional[name]
        : undefined;
    if (name === '' || allowed === undefined) throw new CvssError(vector, `unknown metric "${name}"`);
    if (!allowed.includes(value)) throw new CvssError(vector, `invalid value "${value}" for ${name}`);
    if (metrics.has(name)) throw new CvssError(vector, `metric ${name} given twice`);
    metrics.set(name, value);
  }
  for (const name of Object.keys(base)) {
    if (!metrics.has(name)) throw new CvssError(vector, `missing base metric ${name}`);
  }
  return metrics;
}

/** CVSS v3.1 Roundup (appendix A): the smallest one-decimal number >= `input`, free of floating-point drift. */
function roundup31(input: number): number {
  const intInput = Math.round(input * 100_000);
  return intInput % 10_000 === 0 ? intInput / 100_000 : (Math.floor(intInput / 10_000) + 1) / 10;
}

/** CVSS v3.0 round up (v3.0 specification section 8.1): the plain ceiling to one decimal place. */
function roundup30(input: number): number {
  return Math.ceil(input * 10) / 10;
}

const V3_WEIGHTS = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  CIA: { H: 0.56, L: 0.22, N: 0 },
} as const;

/** Looks up `key` in a weight table whose keys the parser already checked. */
function weight(table: Readonly<Record<string, number>>, key: string | undefined): number {
  const value = key === undefined ? undefined : table[key];
  if (value === undefined) throw new Error(`unexpected metric value ${String(key)}`);
  return value;
}

/**
 * The CVSS v3.0/v3.1 base score of `vector` (`CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H` → 9.8). Temporal and
 * environmental metrics are validated but do not change the result: this is the base score. Throws
 * {@link CvssError} for anything but a well-formed v3.0/v3.1 vector.
 */
export function cvss3BaseScore(vector: string): number {
  const version = vector.startsWith('CVSS:3.1/') ? '3.1' : vector.startsWith('CVSS:3.0/') ? '3.0' : undefined;
  if (version === undefined) throw new CvssError(vector, 'expected the prefix CVSS:3.0/ or CVSS:3.1/');
  const m = parseMetrics(vector, `CVSS:${version}/`, V3_BASE, V3_OPTIONAL);
  const changed = m.get('S') === 'C';
  const pr = m.get('PR');
  const prWeight = pr === 'N' ? 0.85 : pr === 'L' ? (changed ? 0.68 : 0.62) : changed ? 0.5 : 0.27;
  const c = weight(V3_WEIGHTS.CIA, m.get('C'));
  const i = weight(V3_WEIGHTS.CIA, m.get('I'));
  const a = weight(V3_WEIGHTS.CIA, m.get('A'));
  const iss = 1 - (1 - c) * (1 - i) * (1 - a);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15) : 6.42 * iss;
  const exploitability =
    8.22 *
    weight(V3_WEIGHTS.AV, m.get('AV')) *
    weight(V3_WEIGHTS.AC, m.get('AC')) *
    prWeight *
    weight(V3_WEIGHTS.UI, m.get('UI'));
  if (impact <= 0) return 0;
  const roundup = version === '3.1' ? roundup31 : roundup30;
  return changed
    ? roundup(Math.min(1.08 * (impact + exploitability), 10))
    : roundup(Math.min(impact + exploitability, 10));
}

// Severity levels of each v4.0 metric value, in tenths, as `cvss_score.js` defines them (lower is more severe).
const V4_LEVELS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  AV: { N: 0.0, A: 0.1, L: 0.2, P: 0.3 },
  PR: { N: 0.0, L: 0.1, H: 0.2 },
  UI: { N: 0.0, P: 0.1, A: 0.2 },
  AC: { L: 0.0, H: 0.1 },
  AT: { N: 0.0, P: 0.1 },
  VC: { H: 0.0, L: 0.1, N: 0.2 },
  VI: { H: 0.0, L: 0.1, N: 0.2 },
  VA: { H: 0.0, L: 0.1, N: 0.2 },
  SC: { H: 0.1, L: 0.2, N: 0.3 },
  SI: { S: 0.0, H: 0.1, L: 0.2, N: 0.3 },
  SA: { S: 0.0, H: 0.1, L: 0.2, N: 0.3 },
  CR: { H: 0.0, M: 0.1, L: 0.2 },
  IR: { H: 0.0, M: 0.1, L: 0.2 },
  AR: { H: 0.0, M: 0.1, L: 0.2 },
};

/**
 * The effective value of a v4.0 metric: E, CR, IR and AR default to their worst case when not defined, and a
 * defined modified metric (`MAV`...) overrides its base metric.
 */
function effective(m: ReadonlyMap<string, string>, metric: string): string {
  const selected = m.get(metric) ?? 'X';
  if (metric === 'E' && selected === 'X') return 'A';
  if ((metric === 'CR' || metric === 'IR' || metric === 'AR') && selected === 'X') return 'H';
  const modified = m.get(`M${metric}`);
  if (modified !== undefined && modified !== 'X') return modified;
  return selected;
}

/** The MacroVector (EQ1..EQ6 levels) of a v4.0 vector, spec section 8.2 / `macroVector()` of the calculator. */
function macroVector(m: ReadonlyMap<string, string>): [number, number, number, number, number, number] {
  const v = (metric: string): string => effective(m, metric);
  const eq1 =
    v('AV') === 'N' && v('PR') === 'N' && v('UI') === 'N'
      ? 0
      : (v('AV') === 'N' || v('PR') === 'N' || v('UI') === 'N') && v('AV') !== 'P'
        ? 1
        : 2;
  const eq2 = v('AC') === 'L' && v('AT') === 'N' ? 0 : 1;
  const eq3 =
    v('VC') === 'H' && v('VI') === 'H' ? 0 : v('VC') === 'H' || v('VI') === 'H' || v('VA') === 'H' ? 1 : 2;
  const eq4 =
    v('MSI') === 'S' || v('MSA') === 'S' ? 0 : v('SC') === 'H' || v('SI') === 'H' || v('SA') === 'H' ? 1 : 2;
  const eq5 = v('E') === 'A' ? 0 : v('E') === 'P' ? 1 : 2;
  const eq6 =
    (v('CR') === 'H' && v('VC') === 'H') ||
    (v('IR') === 'H' && v('VI') === 'H') ||
    (v('AR') === 'H' && v('VA') === 'H')
      ? 0
      : 1;
  return [eq1, eq2, eq3, eq4, eq5, eq6];
}

/** The MacroVector score, or NaN for a MacroVector that does not exist (as the calculator's `undefined`). */
function lookup(eqs: readonly number[]): number {
  return MACROVECTOR_SCORES[eqs.join('')] ?? NaN;
}

/** The value of `metric` inside a partial vector such as `AV:N/PR:N/UI:N/`. */
function partValue(metric: string, part: string): string {
  for (const item of part.split('/')) {
    const [name, value] = item.split(':');
    if (name === metric && value !== undefined) return value;
  }
  throw new Error(`metric ${metric} missing from ${part}`);
}

function pick<T>(table: Readonly<Record<number, T>>, level: number): T {
  const value = table[level];
  if (value === undefined) throw new Error(`no table entry for level ${level}`);
  return value;
}

/**
 * The CVSS v4.0 score of `vector` (`CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N` → 9.3):
 * CVSS-B for a base-only vector, CVSS-BT/BE/BTE when threat or environmental metrics are present (they take
 * part in the MacroVector as the specification says). Supplemental metrics are validated and do not score.
 * Throws {@link CvssError} for anything but a well-formed v4.0 vector.
 */
export function cvss4Score(vector: string): number {
  if (!vector.startsWith('CVSS:4.0/')) throw new CvssError(vector, 'expected the prefix CVSS:4.0/');
  const m = parseMetrics(vector, 'CVSS:4.0/', V4_BASE, V4_OPTIONAL);
  const v = (metric: string): string => effective(m, metric);

  // No impact on either system: 0 without further ado.
  if (['VC', 'VI', 'VA', 'SC', 'SI', 'SA'].every((metric) => v(metric) === 'N')) return 0;

  const macro = macroVector(m);
  const [eq1, eq2, eq3, eq4, eq5, eq6] = macro;
  const value = lookup(macro);

  // 1a. The next lower MacroVector of each EQ (EQ3 and EQ6 move together) and its score, NaN where none exists.
  const lower = (index: number): number => lookup(macro.map((level, i) => (i === index ? level + 1 : level)));
  const scoreEq1Lower = lower(0);
  const scoreEq2Lower = lower(1);
  let scoreEq3Eq6Lower: number;
  if (eq3 === 0 && eq6 === 0) {
    // Two paths down (00 → 01, 00 → 10): the one with the higher score.
    const left = lookup([eq1, eq2, eq3, eq4, eq5, eq6 + 1]);
    const right = lookup([eq1, eq2, eq3 + 1, eq4, eq5, eq6]);
    scoreEq3Eq6Lower = left > right ? left : right;
  } else if (eq3 === 1 && eq6 === 0) {
    scoreEq3Eq6Lower = lookup([eq1, eq2, eq3, eq4, eq5, eq6 + 1]);
  } else if (eq3 === 2) {
    scoreEq3Eq6Lower = NaN; // 21 → 32 does not exist
  } else {
    scoreEq3Eq6Lower = lookup([eq1, eq2, eq3 + 1, eq4, eq5, eq6]);
  }
  const scoreEq4Lower = lower(3);
  const scoreEq5Lower = lower(4);

  // 1b. The severity distance from the first highest-severity vector of this MacroVector that is at least as
  // severe in every metric (the calculator keeps the last candidate's distances when none qualifies).
  const eq3Maxes = pick<Readonly<Record<number, readonly string[]>>>(MAX_COMPOSED.eq3, eq3);
  const maxVectors: string[] = [];
  for (const a of pick<readonly string[]>(MAX_COMPOSED.eq1, eq1)) {
    for (const b of pick<readonly string[]>(MAX_COMPOSED.eq2, eq2)) {
      for (const c of pick(eq3Maxes, eq6)) {
        for (const d of pick<readonly string[]>(MAX_COMPOSED.eq4, eq4)) {
          for (const e of pick<readonly string[]>(MAX_COMPOSED.eq5, eq5)) maxVectors.push(a + b + c + d + e);
        }
      }
    }
  }
  const metricsOfDistance = [
    'AV',
    'PR',
    'UI',
    'AC',
    'AT',
    'VC',
    'VI',
    'VA',
    'SC',
    'SI',
    'SA',
    'CR',
    'IR',
    'AR',
  ];
  let distance: Record<string, number> = {};
  for (const maxVector of maxVectors) {
    distance = {};
    for (const metric of metricsOfDistance) {
      const levels = V4_LEVELS[metric] ?? {};
      distance[metric] = (levels[v(metric)] ?? NaN) - (levels[partValue(metric, maxVector)] ?? NaN);
    }
    if (!Object.values(distance).some((d) => d < 0)) break;
  }
  const d = (metric: string): number => distance[metric] ?? NaN;
  const currentEq1 = d('AV') + d('PR') + d('UI');
  const currentEq2 = d('AC') + d('AT');
  const currentEq3Eq6 = d('VC') + d('VI') + d('VA') + d('CR') + d('IR') + d('AR');
  const currentEq4 = d('SC') + d('SI') + d('SA');

  const step = 0.1;
  const maxSeverityEq1 = pick<number>(MAX_SEVERITY.eq1, eq1) * step;
  const maxSeverityEq2 = pick<number>(MAX_SEVERITY.eq2, eq2) * step;
  const maxSeverityEq3Eq6 =
    pick<number>(pick<Readonly<Record<number, number>>>(MAX_SEVERITY.eq3eq6, eq3), eq6) * step;
  const maxSeverityEq4 = pick<number>(MAX_SEVERITY.eq4, eq4) * step;

  // 1c/1d. Each existing lower MacroVector contributes its score gap times the proportion of distance travelled;
  // EQ5 always contributes 0 but counts.
  let existing = 0;
  let sum = 0;
  const available = [
    [value - scoreEq1Lower, currentEq1 / maxSeverityEq1],
    [value - scoreEq2Lower, currentEq2 / maxSeverityEq2],
    [value - scoreEq3Eq6Lower, currentEq3Eq6 / maxSeverityEq3Eq6],
    [value - scoreEq4Lower, currentEq4 / maxSeverityEq4],
    [value - scoreEq5Lower, 0],
  ] as const;
  for (const [gap, proportion] of available) {
    if (Number.isNaN(gap)) continue;
    existing += 1;
    sum += gap * proportion;
  }

  // 2/3. The MacroVector score less the mean distance, clamped, rounded half up to one decimal. The epsilon lifts
  // values one floating-point step below an x.x5 tie, as the reference calculator does.
  let score = value - (existing === 0 ? 0 : sum / existing);
  if (score < 0) score = 0;
  if (score > 10) score = 10;
  return Math.round((score + 1e-6) * 10) / 10;
}

/**
 * The score of any supported vector (`CVSS:3.0/`, `CVSS:3.1/`: the base score; `CVSS:4.0/`: as
 * {@link cvss4Score}). Throws {@link CvssError} for other versions (including v2) and malformed vectors.
 */
export function cvssScore(vector: string): { version: '3.0' | '3.1' | '4.0'; score: number } {
  if (vector.startsWith('CVSS:4.0/')) return { version: '4.0', score: cvss4Score(vector) };
  if (vector.startsWith('CVSS:3.1/')) return { version: '3.1', score: cvss3BaseScore(vector) };
  if (vector.startsWith('CVSS:3.0/')) return { version: '3.0', score: cvss3BaseScore(vector) };
  throw new CvssError(vector, 'expected CVSS:3.0/, CVSS:3.1/ or CVSS:4.0/');
}

/**
 * The qualitative rating of a score in 0..10 (the bands of v3.1 section 5 and v4.0 section 6): 0 none, 0.1–3.9
 * low, 4.0–6.9 medium, 7.0–8.9 high, 9.0–10.0 critical. Throws a RangeError outside 0..10 or for NaN.
 */
export function severityOf(score: number): Severity {
  if (!(score >= 0 && score <= 10)) throw new RangeError(`CVSS score out of range: ${score}`);
  if (score === 0) return 'none';
  if (score < 4) return 'low';
  if (score < 7) return 'medium';
  if (score < 9) return 'high';
  return 'critical';
}

const RATING_ORDER: readonly Severity[] = ['none', 'low', 'medium', 'high', 'critical'];

/**
 * Maps an ecosystem's own rating word to the scale, or undefined when it carries none: GHSA `LOW`/`MODERATE`/
 * `HIGH`/`CRITICAL`; Debian urgencies `unimportant`/`low`/`medium`/`high` (with or without the tracker's `*`
 * marks; `not yet assigned` and `end-of-life` are no rating); Ubuntu priorities `negligible`/`low`/`medium`/
 * `high`/`critical` (`untriaged` is none).
 */
export function ecosystemRating(word: string): Severity | undefined {
  const normal = word.trim().toLowerCase().replace(/\*+$/, '').trim();
  switch (normal) {
    case 'critical':
      return 'critical';
    case 'high':
    case 'important':
      return 'high';
    case 'moderate':
    case 'medium':
      return 'medium';
    case 'low':
    case 'unimportant':
    case 'negligible':
      return 'low';
    default:
      return undefined;
  }
}

/** Where {@link advisorySeverity} found its answer. */
export type SeveritySource = 'CVSS_V4' | 'CVSS_V3' | 'ecosystem' | 'none';

/**
 * One severity for `advisory`: the highest valid CVSS v4 score among its `severity` entries and those of its
 * `affected` entries, else the highest v3.x base score among them, else the most severe ecosystem rating (an `Ubuntu` severity entry, the advisory's
 * `database_specific.severity`, or an affected entry's `ecosystem_specific`/`database_specific` `severity`,
 * `urgency` or `ubuntu_priority`), else `{ severity: 'none', score: null, source: 'none' }`. Invalid vectors are
 * passed over, never thrown.
 */
export function advisorySeverity(advisory: Advisory): {
  severity: Severity;
  score: number | null;
  source: SeveritySource;
} {
  // Package-level severities stand in for the top-level one (the schema allows one or the other).
  const entries = [...advisory.severity, ...advisory.affected.flatMap((affected) => affected.severity)];
  for (const [type, source] of [
    ['CVSS_V4', 'CVSS_V4'],
    ['CVSS_V3', 'CVSS_V3'],
  ] as const) {
    let best: number | null = null;
    for (const entry of entries) {
      if (entry.type !== type) continue;
      try {
        const { score } = cvssScore(entry.score);
        if (best === null || score > best) best = score;
      } catch (error) {
        if (!(error instanceof CvssError)) throw error;
      }
    }
    if (best !== null) return { severity: severityOf(best), score: best, source };
  }
  const words = [
    ...entries.filter((entry) => entry.type === 'Ubuntu').map((entry) => entry.score),
    ...advisory.ratings,
    ...advisory.affected.flatMap((affected) => affected.ratings),
  ];
  let rating: Severity | undefined;
  for (const word of words) {
    const mapped = ecosystemRating(word);
    if (
      mapped !== undefined &&
      (rating === undefined || RATING_ORDER.indexOf(mapped) > RATING_ORDER.indexOf(rating))
    )
      rating = mapped;
  }
  if (rating !== undefined) return { severity: rating, score: null, source: 'ecosystem' };
  return { severity: 'none', score: null, source: 'none' };
}
