/**
 * A Harbor vulnerability report as Berth's report model: findings with severities on Berth's scale, the CVSS
 * score the adapter gave, and who scanned.
 */
import { severityOf } from '../cvss.ts';
import type { Finding, FindingSeverity, ScanReport, ScannerInfo } from '../report.ts';
import { schemaProblem } from '../../util/schema-problem.ts';
import { ScannerError } from './errors.ts';
import {
  reportSchema,
  type HarborVulnerability,
  type HarborVulnerabilityReport,
  type ScannerAdapterMetadata,
} from './protocol.ts';

/**
 * A Harbor severity word on Berth's scale: `Critical`/`High`/`Medium`/`Low` as such, `Negligible` is low,
 * `None` (Harbor's own word) is none, `Unknown`, an absent and an unrecognised word are unknown. Case-insensitive.
 */
export function harborSeverity(word: string | null | undefined): FindingSeverity {
  switch (word?.trim().toLowerCase()) {
    case 'critical':
      return 'critical';
    case 'high':
      return 'high';
    case 'medium':
      return 'medium';
    case 'low':
    case 'negligible':
      return 'low';
    case 'none':
      return 'none';
    default:
      return 'unknown';
  }
}

/** A CVSS base score in 0..10 from a number or numeric text, else null. */
function asScore(value: unknown): number | null {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && value.trim() !== ''
        ? Number(value)
        : NaN;
  return Number.isFinite(n) && n >= 0 && n <= 10 ? n : null;
}

/**
 * The CVSS v3 base score of a vulnerability: Trivy's `preferred_cvss.score_v3`, else the NVD score among its
 * vendor attributes (`CVSS.nvd.V3Score`), else the spec's own `cve3_score`; null when none is a valid score.
 */
export function harborScore(vulnerability: HarborVulnerability): number | null {
  const preferred = asScore(vulnerability.preferred_cvss?.score_v3);
  if (preferred !== null) return preferred;
  const cvss = vulnerability.vendor_attributes?.CVSS;
  if (cvss && typeof cvss === 'object') {
    const nvd = (cvss as Record<string, unknown>).nvd;
    if (nvd && typeof nvd === 'object') {
      const score = asScore((nvd as Record<string, unknown>).V3Score);
      if (score !== null) return score;
    }
  }
  return asScore(vulnerability.cve3_score);
}

const PURL_ECOSYSTEMS: Readonly<Record<string, string>> = {
  apk: 'Alpine',
  npm: 'npm',
  pypi: 'PyPI',
  golang: 'Go',
  maven: 'Maven',
  gem: 'RubyGems',
  cargo: 'crates.io',
  nuget: 'NuGet',
  composer: 'Packagist',
};

/** The OSV ecosystem a purl's type (and for `deb`, namespace) names; `unknown` without a purl. */
function ecosystemOf(purl: string | null): string {
  const match = purl ? /^pkg:([A-Za-z0-9.+-]+)\/(?:([^/@?#]+)\/)?/.exec(purl) : null;
  if (!match) return 'unknown';
  const type = match[1]!.toLowerCase();
  if (type === 'deb') return match[2]?.toLowerCase() === 'ubuntu' ? 'Ubuntu' : 'Debian';
  return PURL_ECOSYSTEMS[type] ?? type;
}

/** The first line of a description, at most 300 characters; null when empty. */
function summaryOf(description: string | null | undefined): string | null {
  const line = description?.trim().split(/\r?\n/, 1)[0]?.trim() ?? '';
  if (line === '') return null;
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
}

function toFinding(vulnerability: HarborVulnerability): Finding {
  const score = harborScore(vulnerability);
  let severity = harborSeverity(vulnerability.severity);
  // The adapter's word decides; only where it has none does the score's band say.
  if (severity === 'unknown' && score !== null) severity = severityOf(score);
  const purl = vulnerability.purl ? vulnerability.purl : null;
  return {
    id: vulnerability.id,
    aliases: [],
    package: {
      ecosystem: ecosystemOf(purl),
      name: vulnerability.package,
      version: vulnerability.version,
      purl,
    },
    fixedVersion: vulnerability.fix_version?.trim() ? vulnerability.fix_version.trim() : null,
    severity,
    score,
    summary: summaryOf(vulnerability.description),
    links: [...new Set((vulnerability.links ?? []).map((link) => link.trim()).filter((link) => link !== ''))],
  };
}

/**
 * Validates `report` as a Harbor vulnerability report, rejecting anything else with a `ScannerError`
 * `MALFORMED_REPORT` that names the offending field.
 */
export function parseHarborReport(report: unknown): HarborVulnerabilityReport {
  if (report === null || typeof report !== 'object')
    throw new ScannerError('MALFORMED_REPORT', 'report: not a JSON object');
  const result = reportSchema.safeParse(report);
  if (!result.success)
    throw new ScannerError('MALFORMED_REPORT', `report: ${schemaProblem(result.error, 'report').message}`);
  return result.data;
}

/**
 * The findings of a Harbor vulnerability report (validated first, see {@link parseHarborReport}), one per
 * vulnerability and package; an entry repeated by the adapter (the same id, package, version and fix, found in
 * two layers) counts once.
 */
export function toFindings(report: unknown): Finding[] {
  const parsed = parseHarborReport(report);
  const seen = new Set<string>();
  const findings: Finding[] = [];
  for (const vulnerability of parsed.vulnerabilities ?? []) {
    const finding = toFinding(vulnerability);
    const key = JSON.stringify([
      finding.id,
      finding.package.name,
      finding.package.version,
      finding.fixedVersion,
    ]);
    if (seen.has(key)) continue;
    seen.add(key);
    findings.push(finding);
  }
  return findings;
}

/**
 * Who scanned: the report's scanner, else the adapter's metadata, else `unknown`; a missing vendor or version is
 * taken from the metadata when it names the same scanner, else left empty.
 */
export function scannerInfo(
  report: HarborVulnerabilityReport,
  metadata?: ScannerAdapterMetadata,
): ScannerInfo {
  const fromReport = report.scanner;
  const fromMetadata = metadata?.scanner;
  const sameScanner = !fromReport || !fromMetadata || fromReport.name === fromMetadata.name;
  const name = fromReport?.name || fromMetadata?.name || 'unknown';
  const vendor = fromReport?.vendor || (sameScanner ? fromMetadata?.vendor : null) || '';
  const version = fromReport?.version || (sameScanner ? fromMetadata?.version : null) || '';
  return { name, vendor, version };
}

/**
 * A Harbor report as Berth's `ScanReport`: the findings and the scanner; no OS and no inventory, which the
 * report does not carry. Rejects a malformed report as {@link parseHarborReport} does.
 */
export function toScanReport(report: unknown, metadata?: ScannerAdapterMetadata): ScanReport {
  const parsed = parseHarborReport(report);
  return { scanner: scannerInfo(parsed, metadata), os: null, packages: [], findings: toFindings(parsed) };
}
