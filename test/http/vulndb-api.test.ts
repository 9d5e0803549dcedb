/**
 * The vulnerability database through the admin API (`GET /api/v1/vulndb`, `POST /api/v1/vulndb/import`), on
 * SQLite and PostgreSQL: imports of an `all.zip` (built with Info-ZIP's `zip` from the real OSV fixtures) and of
 * JSON records, incremental re-imports, the status, refusals for anyone but system administrators (audited),
 * and bad bodies. Every response is checked against the OpenAPI document.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { assertError, createTestRegistry, json, type Response, type TestRegistry } from '../helpers/app.ts';
import { addUser, basic, type Headers } from '../helpers/auth.ts';
import { conforms } from '../helpers/openapi.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';
import { skipOrFail } from '../helpers/skip.ts';
import { OSV_FIXTURE_ECOSYSTEMS } from '../helpers/osv-fixtures.ts';

const PREFIX = '/api/v1';
const ADMIN = basic('root', 'root-password-1');
const USER = basic('dev', 'dev-password-1');
const FIXTURES = fileURLToPath(new URL('../fixtures/osv/', import.meta.url));
const NAMES = readdirSync(FIXTURES)
  .filter((n) => n.endsWith('.json'))
  .sort();

/** The fixtures as an all.zip (Info-ZIP's zip writing to stdout), or null when zip is missing. */
function allZip(): Buffer | null {
  try {
    return execFileSync('zip', ['-q', '-', ...NAMES], { cwd: FIXTURES, maxBuffer: 1 << 26 });
  } catch {
    return null;
  }
}
const ZIP = allZip();
const zipSkip = skipOrFail(ZIP === null ? 'the zip command is not installed' : false);

interface ImportView {
  kind: string;
  source: string;
  added: number;
  updated: number;
  unchanged: number;
  invalid: number;
  invalidSamples: { entry: string; id: string | null; reason: string }[];
  revision: number;
  changed: { ecosystem: string; name: string }[];
}

interface StatusView {
  revision: number;
  ecosystems: { ecosystem: string; advisories: number; withdrawn: number }[];
  imports: { source: string; added: number; updated: number; unchanged: number; revision: number }[];
}

const pgSkip = await postgresSkipReason();
const dialects = [
  { name: 'sqlite', skip: false as const, schema: null },
  { name: 'postgres', skip: pgSkip, schema: `berth_test_${randomBytes(6).toString('hex')}` },
];

for (const dialect of dialects) {
  describe(`vulnerability database admin API on ${dialect.name}`, { skip: dialect.skip }, () => {
    let reg: TestRegistry;

    async function post(
      query: string,
      headers: Headers,
      contentType: string,
      payload: string | Buffer,
    ): Promise<Response> {
      const url = `${PREFIX}/vulndb/import${query}`;
      const res = await reg.inject({
        method: 'POST',
        url,
        headers: { ...headers, 'content-type': contentType },
        payload,
      });
      conforms('POST', url, res);
      return res;
    }

    async function status(headers: Headers): Promise<Response> {
      const res = await reg.inject({ method: 'GET', url: `${PREFIX}/vulndb`, headers });
      conforms('GET', `${PREFIX}/vulndb`, res);
      return res;
    }

    before(async () => {
      reg = await createTestRegistry({
        'auth.mode': 'basic',
        ...(dialect.schema === null
          ? {}
          : {
              'metadata.driver': 'postgres',
              'metadata.postgres.url': POSTGRES_URL,
              'metadata.postgres.schema': dialect.schema,
            }),
      });
      await addUser(reg, 'root', 'root-password-1', { admin: true });
      await addUser(reg, 'dev', 'dev-password-1');
    });
    after(async () => {
      await reg?.dispose();
      if (dialect.schema !== null && !dialect.skip) {
        const admin = new pg.Client({ connectionString: POSTGRES_URL });
        await admin.connect();
        await admin.query(`drop schema if exists "${dialect.schema}" cascade`).finally(() => admin.end());
      }
    });

    it('refuses users who are not system administrators, auditing refused imports', async () => {
      assertError(await status(USER), 403, 'DENIED');
      const res = await post('', USER, 'application/json', readFileSync(`${FIXTURES}${NAMES[0]}`));
      assertError(res, 403, 'DENIED');
      const audit = await reg.services.auth.store.queryAudit({ action: 'vulndb.import', limit: 5 });
      assert.deepEqual(
        audit.items.map((a) => `${a.actor} ${a.success} ${a.target}`),
        ['dev false api'],
      );
      assert.equal(await reg.services.vulnDb.revision(), 0);
    });

    it(
      'imports an all.zip, then JSON records incrementally, and reports the status',
      { skip: zipSkip },
      async () => {
        const first = await post('?source=osv-all', ADMIN, 'application/zip', ZIP!);
        assert.equal(first.statusCode, 200, first.body);
        const view = json<ImportView>(first);
        assert.deepEqual(
          [view.kind, view.source, view.added, view.updated, view.unchanged, view.invalid],
          ['zip', 'osv-all', NAMES.length, 0, 0, 0],
        );
        assert.ok(view.changed.some((k) => k.ecosystem === 'npm' && k.name === 'semver'));

        // Again as JSON: one record with a later modified time, one as it was, one invalid.
        const semver = JSON.parse(readFileSync(`${FIXTURES}GHSA-c2qf-rxjj-qqgw.json`, 'utf8')) as Record<
          string,
          unknown
        >;
        const minimist = JSON.parse(readFileSync(`${FIXTURES}GHSA-xvch-5gv4-984h.json`, 'utf8')) as unknown;
        const body = JSON.stringify([{ ...semver, modified: '2030-01-01T00:00:00Z' }, minimist, { id: 'X' }]);
        const second = await post('', ADMIN, 'application/json; charset=utf-8', body);
        assert.equal(second.statusCode, 200, second.body);
        const update = json<ImportView>(second);
        assert.deepEqual(
          [update.kind, update.source, update.added, update.updated, update.unchanged, update.invalid],
          ['records', 'api', 0, 1, 1, 1],
        );
        assert.deepEqual(update.changed, [{ ecosystem: 'npm', name: 'semver' }]);
        assert.deepEqual(
          update.invalidSamples.map((s) => [s.entry, s.id]),
          [['#2', 'X']],
        );
        assert.equal(update.revision, view.revision + 1);

        const res = await status(ADMIN);
        assert.equal(res.statusCode, 200, res.body);
        const state = json<StatusView>(res);
        assert.equal(state.revision, update.revision);
        assert.deepEqual(state.ecosystems, OSV_FIXTURE_ECOSYSTEMS);
        assert.deepEqual(
          state.imports.map((i) => [i.source, i.added, i.updated, i.unchanged]),
          [
            ['api', 0, 1, 1],
            ['osv-all', NAMES.length, 0, 0],
          ],
        );
        const audit = await reg.services.auth.store.queryAudit({ action: 'vulndb.import', limit: 5 });
        const ok = audit.items.filter((a) => a.success);
        assert.deepEqual(
          ok.map((a) => `${a.actor} ${a.target}`),
          ['root api', 'root osv-all'],
        );
        assert.deepEqual(ok[0]?.detail, {
          via: 'api',
          added: 0,
          updated: 1,
          unchanged: 1,
          invalid: 1,
          revision: update.revision,
          changedPackages: 1,
        });
      },
    );

    it('answers 400 to bodies it cannot import', async () => {
      assertError(await post('', ADMIN, 'text/plain', 'hello'), 400, 'UNSUPPORTED');
      assertError(await post('', ADMIN, 'application/json', '{"id": '), 400, 'UNSUPPORTED');
      assertError(await post('', ADMIN, 'application/zip', 'not an archive at all'), 400, 'UNSUPPORTED');
      assertError(await post('?source=..%2Fetc', ADMIN, 'application/json', '{}'), 400, 'UNSUPPORTED');
      const res = await post('?source=none', ADMIN, 'application/json', '{"id": "X-1"}');
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(json<ImportView>(res).invalid, 1);
    });
  });
}
