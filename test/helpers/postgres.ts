/**
 * The PostgreSQL that database tests run against: `BERTH_TEST_POSTGRES_URL`, by default the one this machine and
 * CI start (`postgres://postgres@127.0.0.1:5432/test`, trust auth). Tests that need it are skipped with the
 * reason `postgresSkipReason()` gives when it does not answer, never silently passed.
 */
import pg from 'pg';

export const POSTGRES_URL =
  process.env['BERTH_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparsable URL>';
  }
}

/** Null when PostgreSQL answers, else why not. */
export async function probePostgres(url: string = POSTGRES_URL): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('select 1');
    return null;
  } catch (error) {
    return error instanceof Error ? error.message || error.name : String(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A skip reason when PostgreSQL does not answer, else false. */
export async function postgresSkipReason(url: string = POSTGRES_URL): Promise<string | false> {
  const problem = await probePostgres(url);
  return problem === null ? false : `PostgreSQL not reachable at ${redact(url)}: ${problem}`;
}
