/**
 * The vulnerability database store on SQLite and PostgreSQL: batches that insert, replace only on a later
 * `modified` and count the rest unchanged; the affected-package index rewritten with its advisory; the revision
 * growing once per batch that changed something; candidates and `affectedBy` by package key (withdrawn ones left
 * out); import records and per-ecosystem counts. Records here are hand-written minimal OSV texts.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { NewAdvisory, VulnDbStore } from '../../src/metadata/vulndb-store.ts';
import { keyString } from '../../src/metadata/vulndb-store.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

function advisory(
  id: string,
  modified: string,
  affected: { ecosystem: string; release?: string; name: string }[],
  withdrawn: string | null = null,
): NewAdvisory {
  return {
    id,
    modified,
    published: '2024-01-01T00:00:00Z',
    withdrawn,
    summary: `${id} summary`,
    record: JSON.stringify({ id, modified }),
    affected: affected.map((a) => ({ ecosystem: a.ecosystem, release: a.release ?? '', name: a.name })),
  };
}

const keys = (list: readonly { ecosystem: string; name: string }[]): string[] =>
  list.map((k) => `${k.ecosystem}/${k.name}`).sort();

for (const kind of await testDatabases()) {
  describe(`vulnerability database store on ${kind.dialect}`, { skip: kind.skip }, () => {
    let db: TestDatabase;
    let store: VulnDbStore;
    beforeEach(async () => {
      db = await kind.create();
      store = db.store.vulnDbStore();
    });
    afterEach(() => db.cleanup());

    it('adds, replaces on a later modified time only, and grows the revision per changing batch', async () => {
      assert.equal(await store.revision(), 0);
      const first = await store.writeBatch(
        [
          advisory('DSA-1', '2024-02-01T00:00:00Z', [
            { ecosystem: 'Debian', release: '12', name: 'openssl' },
            { ecosystem: 'Debian', release: '11', name: 'openssl' },
          ]),
          advisory('GHSA-a', '2024-02-01T00:00:00Z', [{ ecosystem: 'npm', name: 'semver' }]),
        ],
        'test',
      );
      assert.deepEqual([first.added, first.updated, first.unchanged, first.revision], [2, 0, 0, 1]);
      assert.deepEqual(keys(first.changed), ['Debian/openssl', 'npm/semver']);

      // Same and older modified: nothing written, the revision stays.
      const same = await store.writeBatch(
        [
          advisory('DSA-1', '2024-02-01T00:00:00Z', [{ ecosystem: 'Debian', release: '12', name: 'other' }]),
          advisory('GHSA-a', '2023-01-01T00:00:00.5Z', [{ ecosystem: 'npm', name: 'x' }]),
        ],
        'test',
      );
      assert.deepEqual([same.added, same.updated, same.unchanged, same.revision], [0, 0, 2, 1]);
      assert.deepEqual(same.changed, []);
      assert.equal(await store.revision(), 1);

      // A later one replaces the record and its packages; both the old and new packages changed.
      const later = await store.writeBatch(
        [advisory('GHSA-a', '2024-03-01T00:00:00.123456Z', [{ ecosystem: 'npm', name: 'semver-x' }])],
        'test',
      );
      assert.deepEqual([later.added, later.updated, later.unchanged, later.revision], [0, 1, 0, 2]);
      assert.deepEqual(keys(later.changed), ['npm/semver', 'npm/semver-x']);
      assert.equal((await store.candidates([{ ecosystem: 'npm', name: 'semver' }])).length, 0);
      const found = await store.candidates([{ ecosystem: 'npm', name: 'semver-x' }]);
      assert.deepEqual(
        found.map((c) => [c.advisory.id, c.advisory.modified.toISOString()]),
        [['GHSA-a', '2024-03-01T00:00:00.123Z']],
      );
      assert.equal(
        found[0]?.advisory.record,
        JSON.stringify({ id: 'GHSA-a', modified: '2024-03-01T00:00:00.123456Z' }),
      );
    });

    it('returns candidates once per advisory with the keys it names, and leaves withdrawn ones out', async () => {
      await store.writeBatch(
        [
          advisory('DSA-1', '2024-02-01T00:00:00Z', [
            { ecosystem: 'Debian', release: '12', name: 'openssl' },
            { ecosystem: 'Debian', release: '11', name: 'openssl' },
            { ecosystem: 'Debian', release: '12', name: 'openssl-extra' },
          ]),
          advisory('DSA-2', '2024-02-01T00:00:00Z', [
            { ecosystem: 'Debian', release: '12', name: 'openssl' },
          ]),
          advisory(
            'GONE-1',
            '2024-02-01T00:00:00Z',
            [{ ecosystem: 'Debian', name: 'openssl' }],
            '2024-02-02T00:00:00Z',
          ),
          advisory('PYSEC-1', '2024-02-01T00:00:00Z', [{ ecosystem: 'PyPI', name: 'openssl' }]),
        ],
        'test',
      );
      const found = await store.candidates([
        { ecosystem: 'Debian', name: 'openssl' },
        { ecosystem: 'Debian', name: 'openssl-extra' },
        { ecosystem: 'Debian', name: 'openssl' },
      ]);
      assert.deepEqual(
        found.map((c) => [c.advisory.id, keys(c.keys)]),
        [
          ['DSA-1', ['Debian/openssl', 'Debian/openssl-extra']],
          ['DSA-2', ['Debian/openssl']],
        ],
      );
      const affected = await store.affectedBy([
        { ecosystem: 'Debian', name: 'openssl' },
        { ecosystem: 'PyPI', name: 'openssl' },
        { ecosystem: 'npm', name: 'none' },
      ]);
      assert.deepEqual([...affected.values()].map((e) => [keyString(e.key), e.ids]).sort(), [
        [keyString({ ecosystem: 'Debian', name: 'openssl' }), ['DSA-1', 'DSA-2']],
        [keyString({ ecosystem: 'PyPI', name: 'openssl' }), ['PYSEC-1']],
      ]);
      assert.equal((await store.get('GONE-1'))?.withdrawn?.toISOString(), '2024-02-02T00:00:00.000Z');
      assert.equal(await store.get('NOPE'), null);
      assert.deepEqual(await store.counts(), [
        { ecosystem: 'Debian', advisories: 2, withdrawn: 1 },
        { ecosystem: 'PyPI', advisories: 1, withdrawn: 0 },
      ]);
    });

    it('handles batches and key lists larger than one statement holds', async () => {
      const many = Array.from({ length: 1200 }, (_, i) =>
        advisory(`GHSA-${i}`, '2024-02-01T00:00:00Z', [{ ecosystem: 'npm', name: `pkg-${i % 700}` }]),
      );
      const result = await store.writeBatch(many, 'bulk');
      assert.equal(result.added, 1200);
      assert.equal(result.changed.length, 700);
      const wanted = Array.from({ length: 900 }, (_, i) => ({ ecosystem: 'npm', name: `pkg-${i}` }));
      const found = await store.candidates(wanted);
      assert.equal(found.length, 1200);
      assert.equal((await store.affectedBy(wanted)).size, 700);
    });

    it('records the last import per source', async () => {
      await store.recordImport({
        source: 'npm',
        added: 3,
        updated: 0,
        unchanged: 0,
        invalid: 1,
        revision: 1,
      });
      const again = await store.recordImport({
        source: 'npm',
        added: 0,
        updated: 1,
        unchanged: 2,
        invalid: 0,
        revision: 2,
      });
      await store.recordImport({
        source: 'Debian',
        added: 1,
        updated: 0,
        unchanged: 0,
        invalid: 0,
        revision: 3,
      });
      assert.equal(again.updated, 1);
      const all = await store.imports();
      assert.deepEqual(
        all.map((r) => [r.source, r.added, r.updated, r.unchanged, r.invalid, r.revision]),
        [
          ['Debian', 1, 0, 0, 0, 3],
          ['npm', 0, 1, 2, 0, 2],
        ],
      );
      assert.ok(all[0]?.importedAt instanceof Date);
    });
  });
}
