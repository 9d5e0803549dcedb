/**
 * A namespace's scanning policy: whether its images are scanned on push and by which scanner, whether SBOMs are
 * attached as referrers, and what a pull of a vulnerable (or not yet scanned) image meets (`mode`).
 *
 * - `mode`: `off` (pulls are never refused), `warn` (served with a `Warning` header), `enforce` (412).
 * - `severity`: the threshold: a finding at it or above blocks, unless allowlisted (or unfixed under
 *   `fixableOnly`).
 * - `requireScan`: also refuse images without a finished scan (under `warn`, warn about them).
 * - `allowlist`: vulnerability ids (matched against a finding's id and aliases) that never block, each until its
 *   `expiresAt` if it has one.
 */
import { z } from 'zod';
import { schemaProblem } from '../util/schema-problem.ts';
import { atOrAbove, type Finding } from './report.ts';

/** The built-in scanner's name, as reports and policies spell it. */
export const BUILTIN_SCANNER = 'berth';

export const allowlistEntrySchema = z
  .object({
    /** A vulnerability id (`CVE-2023-4911`, `GHSA-…`); matched case-insensitively against ids and aliases. */
    id: z.string().min(1).max(200),
    /** ISO 8601 time after which the entry no longer applies; absent: never expires. */
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    /** Why it is accepted, for the record. */
    reason: z.string().max(1000).optional(),
  })
  .strict();

export const scanPolicySchema = z
  .object({
    mode: z.enum(['off', 'warn', 'enforce']).default('off'),
    severity: z.enum(['low', 'medium', 'high', 'critical']).default('critical'),
    fixableOnly: z.boolean().default(false),
    requireScan: z.boolean().default(false),
    scanOnPush: z.boolean().default(true),
    /** `berth` (built in) or the name of a registered external scanner. */
    scanner: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-"')
      .default(BUILTIN_SCANNER),
    /** Attach SPDX and CycloneDX SBOMs to scanned images as referrers. */
    attachSboms: z.boolean().default(false),
    allowlist: z.array(allowlistEntrySchema).max(10_000).default([]),
  })
  .strict();

export type ScanPolicy = z.infer<typeof scanPolicySchema>;
export type AllowlistEntry = z.infer<typeof allowlistEntrySchema>;

/** The policy of a namespace that never set one. */
export const DEFAULT_SCAN_POLICY: ScanPolicy = scanPolicySchema.parse({});

/** A policy document that does not check; `field` is the dotted path of the offending field. */
export class ScanPolicyError extends Error {
  constructor(
    message: string,
    readonly field: string | undefined,
  ) {
    super(message);
    this.name = 'ScanPolicyError';
  }
}

/** Parses and checks a policy document (defaults filled in); throws ScanPolicyError naming the first problem. */
export function parseScanPolicy(document: unknown): ScanPolicy {
  const result = scanPolicySchema.safeParse(document);
  if (!result.success) {
    const problem = schemaProblem(result.error, 'policy');
    throw new ScanPolicyError(problem.message, problem.field);
  }
  return result.data;
}

/** The allowlist entry covering `finding` at `now` (by id or alias, case-insensitively), or undefined. */
export function allowlisted(
  finding: Finding,
  allowlist: readonly AllowlistEntry[],
  now: Date,
): AllowlistEntry | undefined {
  const ids = new Set([finding.id, ...finding.aliases].map((id) => id.toUpperCase()));
  return allowlist.find(
    (entry) =>
      ids.has(entry.id.toUpperCase()) &&
      (entry.expiresAt === undefined || Date.parse(entry.expiresAt) > now.getTime()),
  );
}

/** The findings that block a pull under `policy` at `now`: at or above its severity, not allowlisted. */
export function blockingFindings(findings: readonly Finding[], policy: ScanPolicy, now: Date): Finding[] {
  return findings.filter(
    (finding) =>
      finding.severity !== 'unknown' &&
      atOrAbove(finding.severity, policy.severity) &&
      !(policy.fixableOnly && finding.fixedVersion === null) &&
      allowlisted(finding, policy.allowlist, now) === undefined,
  );
}
