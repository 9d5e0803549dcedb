import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Kysely, SqliteDialect } from 'kysely';

import { CompiledRead } from '../../src/metadata/compiled-read.ts';
import { BetterSqlite3 } from '../../src/metadata/dialects.ts';

interface Db {
  items: { name: string; kind: string; size: number };
}

async function database(): Promise<Kysely<Db>> {
  const db = new Kysely<Db>({ dialect: new SqliteDialect({ database: new BetterSqlite3(':memory:') }) });
  await db.schema
    .createTable('items')
    .addColumn('name', 'text')
    .addColumn('kind', 'text')
    .addColumn('size', 'integer')
    .execute();
  await db
    .insertInto('items')
    .values([
      { name: 'a', kind: 'blob', size: 1 },
      { name: 'b', kind: 'blob', size: 2 },
      { name: 'b', kind: 'manifest', size: 3 },
      { name: 'c', kind: 'manifest', size: 4 },
    ])
    .execute();
  return db;
}

describe('CompiledRead', () => {
  it('runs with each call’s parameters, wherever they appear among constants in the compiled query', async () => {
    const db = await database();
    // The first placeholder is used last, and a constant (10) sits between them.
    const read = new CompiledRead(db, 2, (q, kind, name) =>
      q
        .selectFrom('items')
        .select(['name', 'size'])
        .where('name', '=', name)
        .where('size', '<', 10)
        .where('kind', '=', kind)
        .orderBy('size'),
    );
    assert.deepEqual(await read.rows('blob', 'b'), [{ name: 'b', size: 2 }]);
    assert.deepEqual(await read.rows('manifest', 'b'), [{ name: 'b', size: 3 }]);
    assert.deepEqual(await read.first('manifest', 'c'), { name: 'c', size: 4 });
    assert.equal(await read.first('blob', 'c'), undefined);
    await db.destroy();
  });

  it('gives the same results as the query built each time', async () => {
    const db = await database();
    const read = new CompiledRead(db, 1, (q, kind) =>
      q.selectFrom('items').selectAll().where('kind', '=', kind).orderBy('name'),
    );
    for (const kind of ['blob', 'manifest', 'none']) {
      const direct = await db
        .selectFrom('items')
        .selectAll()
        .where('kind', '=', kind)
        .orderBy('name')
        .execute();
      assert.deepEqual(await read.rows(kind), direct);
    }
    await db.destroy();
  });

  it('refuses a build that does not use a parameter as a value', async () => {
    const db = await database();
    const read = new CompiledRead(db, 2, (q, name) =>
      q.selectFrom('items').selectAll().where('name', '=', name),
    );
    await assert.rejects(read.rows('a', 'unused'), /parameter 1 does not appear/);
    await db.destroy();
  });
});
