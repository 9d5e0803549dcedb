/**
 * Thrown by the version comparators for a string that is not a version of the ecosystem in question. The message
 * always quotes the offending version; `ecosystem` and `version` carry the same facts for callers that branch on them.
 */
export class VersionError extends Error {
  override readonly name = 'VersionError';

  /**
   * @param ecosystem the ordering that refused the string (`Debian`, `Alpine`, `SemVer`, `PEP 440`, `Maven`).
   * @param version the refused string, verbatim.
   * @param reason why it was refused, without the version (that is added here).
   */
  constructor(
    readonly ecosystem: string,
    readonly version: string,
    reason: string,
  ) {
    super(`invalid ${ecosystem} version ${JSON.stringify(version)}: ${reason}`);
  }
}

/**
 * Longest version string any comparator accepts. Real versions are far shorter; the cap keeps a hostile string from
 * costing more than a bounded amount of work.
 */
export const MAX_VERSION_LENGTH = 512;

/**
 * Compares two runs of ASCII digits as unbounded non-negative integers (leading zeros ignored), so that versions with
 * date stamps or 20-digit build numbers compare exactly. Returns -1, 0 or 1.
 */
export function compareDigitRuns(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Clamps a comparison result to -1, 0 or 1. */
export function sign(n: number): number {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}
