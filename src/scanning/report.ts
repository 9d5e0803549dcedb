/**
 * The vulnerability report of one image manifest, whichever scanner produced it: the built-in one (inventory +
 * the imported OSV database) or an external scanner behind Harbor's Pluggable Scanner API. Stored per manifest
 * digest, served by the API and checked by the pull policy.
 */
import type { Severity } from './cvss.ts';
import type { OsInfo, Package } from './inventory/types.ts';

/** A finding's severity: a CVSS band, or `unknown` when neither a vector nor a rating says. */
export type FindingSeverity = Severity | 'unknown';

/** Severities from least to most severe, `unknown` first (a policy threshold never counts it as severe). */
export const SEVERITY_ORDER: readonly FindingSeverity[] = [
  'unknown',
  'none',
  'low',
  'medium',
  'high',
  'critical',
];

/** True when `severity` is `threshold` or worse (`unknown` is never at or above a threshold but `unknown`). */
export function atOrAbove(severity: FindingSeverity, threshold: FindingSeverity): boolean {
  return SEVERITY_ORDER.indexOf(severity) >= SEVERITY_ORDER.indexOf(threshold);
}

/** The package a finding is about, as installed in the image. */
export interface FindingPackage {
  /** OSV base ecosystem (`Debian`, `Alpine`, `npm`...), or the external scanner's own word. */
  readonly ecosystem: string;
  readonly name: string;
  /** The installed version. */
  readonly version: string;
  /** Package URL, when known. */
  readonly purl: string | null;
}

/** One vulnerability of one installed package. */
export interface Finding {
  /** The advisory id (`CVE-2023-4911`, `GHSA-…`, `DSA-5514-1`). */
  readonly id: string;
  /** The advisory's other ids (aliases, and the upstream records it derives from); allowlists match any. */
  readonly aliases: readonly string[];
  readonly package: FindingPackage;
  /** The first version that fixes it, or null when no fix is known (an unfixed vulnerability). */
  readonly fixedVersion: string | null;
  readonly severity: FindingSeverity;
  /** The CVSS base score (the one the severity comes from, or the one a scanner reported), null when none. */
  readonly score: number | null;
  /** One line about the vulnerability, null when the advisory has none. */
  readonly summary: string | null;
  /** Reference URLs, most useful first (may be empty). */
  readonly links: readonly string[];
}

/** Counts of findings per severity. */
export type SeverityCounts = Record<FindingSeverity, number>;

/** Counts `findings` per severity. */
export function summarize(findings: readonly Finding[]): SeverityCounts {
  const counts: SeverityCounts = { unknown: 0, none: 0, low: 0, medium: 0, high: 0, critical: 0 };
  for (const finding of findings) counts[finding.severity] += 1;
  return counts;
}

/** Who produced a report. */
export interface ScannerInfo {
  /** `berth` for the built-in scanner, else the name the external scanner gives itself (the stored scan names the registered scanner). */
  readonly name: string;
  readonly vendor: string;
  readonly version: string;
}

/** The result of scanning one manifest (for an index: the union of its platform manifests). */
export interface ScanReport {
  readonly scanner: ScannerInfo;
  /** Null when no os-release was found (or an external scanner did not say). */
  readonly os: OsInfo | null;
  /** The inventory; empty when an external scanner reports findings only. */
  readonly packages: readonly Package[];
  readonly findings: readonly Finding[];
}
