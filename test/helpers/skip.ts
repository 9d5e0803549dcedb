/**
 * The one rule for tests that need something this machine may lack (PostgreSQL, a client tool, root for a
 * daemon): they are skipped with the reason, except under CI (the environment variable `CI` set to `true`), where
 * the missing piece is a failure. A CI run must not pass while silently skipping what it is there to test.
 */

/**
 * `reason` as a skip reason (`false`: nothing is missing, run the test). Under CI a reason throws instead, with
 * the reason, failing the test file that asked.
 */
export function skipOrFail(reason: string | false): string | false {
  if (reason === false || process.env.CI !== 'true') return reason;
  throw new Error(`${reason}; under CI (CI=true) the tests must not skip it`);
}
