/**
 * The PostgreSQL that database tests run against: `BERTH_TEST_POSTGRES_URL`, by default the one this machine and
 * CI start (`postgres://postgres@127.0.0.1:5432/test`, trust auth). Tests that need it are skipped with the
 * reason `postgresSkipReason()` gives when it does not answer, never silently passed; under CI (`CI=true`) they
 * fail with that reason instead (`skipOrFail`).
 */
import pg from 'pg';
import { skipOrFail } from './skip.ts';

export const POSTGRES_URL =
  process.env['BERTH_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparsable URL>';
  }
}

/** Null when PostgreSQL answers, else why not. */
async function probePostgres(url: string): Promise<string | null> {
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

/** A skip reason when PostgreSQL does not answer, else false; under CI, rejects with the reason instead. */
export async function postgresSkipReason(url: string = POSTGRES_URL): Promise<string | false> {
  const problem = await probePostgres(url);
  return skipOrFail(problem === null ? false : `PostgreSQL not reachable at ${redact(url)}: ${problem}`);
}
