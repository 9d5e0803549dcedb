/**
 * Metrics of a registry on PostgreSQL: the metadata store's calls are timed with `driver="postgres"`, and the
 * pool's connection counts are exported.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { createTestRegistry } from '../helpers/app.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';

const skip = await postgresSkipReason();

describe('metrics on PostgreSQL', { skip }, () => {
  const admin = skip === false ? new pg.Pool({ connectionString: POSTGRES_URL, max: 1 }) : null;
  after(() => admin?.end());

  it('times store calls and reports the pool', async () => {
    const schema = `berth_test_${randomBytes(6).toString('hex')}`;
    const reg = await createTestRegistry({
      'metadata.driver': 'postgres',
      'metadata.postgres.url': POSTGRES_URL,
      'metadata.postgres.schema': schema,
      'metadata.postgres.maxConnections': 3,
    });
    try {
      await reg.pushImage('pg/app', 'v1');
      const res = await reg.inject({ method: 'GET', url: '/metrics' });
      assert.equal(res.statusCode, 200);
      const line = (pattern: string): number => {
        const m = new RegExp(`^${pattern} (\\S+)$`, 'm').exec(res.body);
        assert.ok(m, `no sample ${pattern}`);
        return Number(m[1]);
      };
      assert.equal(
        line(
          'berth_database_operation_duration_seconds_count\\{driver="postgres",operation="putManifest"\\}',
        ),
        1,
      );
      const total = line('berth_database_connections\\{state="total"\\}');
      const idle = line('berth_database_connections\\{state="idle"\\}');
      assert.ok(total >= 1 && total <= 3, `total ${total}`);
      assert.ok(idle >= 0 && idle <= total, `idle ${idle} of ${total}`);
      assert.equal(line('berth_database_connections\\{state="waiting"\\}'), 0);
    } finally {
      await reg.dispose();
      await admin?.query(`drop schema if exists "${schema}" cascade`);
    }
  });
});
