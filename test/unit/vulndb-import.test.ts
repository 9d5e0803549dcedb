/**
 * Importing OSV records into the vulnerability database (SQLite; the store itself is tested on both dialects):
 * an `all.zip` built with Info-ZIP's `zip` from the real fixtures (plain, ZIP64, and streamed with data
 * descriptors), a directory of them, a JSON file, record iterables; incremental re-imports, updates, withdrawals,
 * invalid records counted without stopping the import, damaged archives.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { VulnDbStore } from '../../src/metadata/vulndb-store.ts';
import {
  importDirectory,
  importPath,
  importRecords,
  importZip,
  ZipError,
} from '../../src/scanning/vulndb/import.ts';
import { parseAdvisory } from '../../src/scanning/osv.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';
import { skipOrFail } from '../helpers/skip.ts';
import { OSV_FIXTURE_PACKAGES } from '../helpers/osv-fixtures.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/osv/', import.meta.url));
const fixtureNames = (await readdir(FIXTURES)).filter((n) => n.endsWith('.json')).sort();

function hasZip(): boolean {
  try {
    execFileSync('zip', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const zipSkip = skipOrFail(hasZip() ? false : 'the zip command is not installed');

async function fixture(name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path.join(FIXTURES, name), 'utf8')) as Record<string, unknown>;
}

const sqlite = (await testDatabases())[0]!;

describe('vulnerability database import', () => {
  let db: TestDatabase;
  let store: VulnDbStore;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-vulndb-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    db = await sqlite.create();
    store = db.store.vulnDbStore();
  });
  afterEach(() => db.cleanup());

  /** `zip ARGS... OUT <fixtures>` run in the fixtures directory; `stream`: zip writes to a pipe instead. */
  async function zip(out: string, args: string[], stream = false): Promise<string> {
    const target = path.join(dir, out);
    if (stream) {
      await writeFile(target, execFileSync('zip', ['-q', ...args, '-', ...fixtureNames], { cwd: FIXTURES }));
    } else {
      execFileSync('zip', ['-q', ...args, target, ...fixtureNames], { cwd: FIXTURES });
    }
    return target;
  }

  it(
    'imports an all.zip, then finds every record unchanged on a second import',
    { skip: zipSkip },
    async () => {
      const file = await zip('all.zip', []);
      const first = await importZip(store, file);
      assert.equal(first.source, 'all.zip');
      assert.deepEqual(
        [first.added, first.updated, first.unchanged, first.invalid],
        [fixtureNames.length, 0, 0, 0],
      );
      assert.equal(first.revision, 1);
      assert.deepEqual(
        first.changed.map((k) => `${k.ecosystem}/${k.name}`),
        OSV_FIXTURE_PACKAGES,
      );
      // The stored record parses to the same advisory but for the dropped details.
      const stored = await store.get('GHSA-c2qf-rxjj-qqgw');
      assert.ok(stored !== null);
      const original = parseAdvisory(await fixture('GHSA-c2qf-rxjj-qqgw.json'));
      assert.deepEqual(parseAdvisory(stored.record), { ...original, details: null });
      assert.ok(stored.record.length < JSON.stringify(await fixture('GHSA-c2qf-rxjj-qqgw.json')).length);

      const second = await importZip(store, file, { source: 'npm' });
      assert.deepEqual([second.added, second.updated, second.unchanged], [0, 0, fixtureNames.length]);
      assert.equal(second.revision, 1);
      assert.deepEqual(second.changed, []);
      assert.deepEqual(
        (await store.imports()).map((r) => [r.source, r.added, r.unchanged]),
        [
          ['all.zip', fixtureNames.length, 0],
          ['npm', 0, fixtureNames.length],
        ],
      );
    },
  );

  it('reads ZIP64 archives and entries written with data descriptors', { skip: zipSkip }, async () => {
    const zip64 = await importZip(store, await zip('zip64.zip', ['-fz']));
    assert.equal(zip64.added, fixtureNames.length);
    const streamed = await zip('streamed.zip', ['-fz-'], true);
    // Streaming to a pipe, zip cannot seek back: sizes and CRCs follow each entry (general purpose flag bit 3).
    const bytes = await readFile(streamed);
    assert.equal(bytes.readUInt16LE(6) & 0x8, 0x8);
    const other = await sqlite.create();
    try {
      const result = await importZip(other.store.vulnDbStore(), streamed);
      assert.deepEqual([result.added, result.invalid], [fixtureNames.length, 0]);
    } finally {
      await other.cleanup();
    }
  });

  it(
    'counts a damaged entry as invalid and goes on; refuses a file that is no archive',
    { skip: zipSkip },
    async () => {
      const file = await zip('stored.zip', ['-0']);
      const bytes = await readFile(file);
      // Flip one byte inside the first entry's (stored, uncompressed) data: its CRC-32 no longer matches.
      const nameLength = bytes.readUInt16LE(26);
      const extraLength = bytes.readUInt16LE(28);
      const at = 30 + nameLength + extraLength + 10;
      bytes[at] = bytes[at]! ^ 0x20;
      await writeFile(file, bytes);
      const result = await importZip(store, file);
      assert.equal(result.invalid, 1);
      assert.equal(result.added, fixtureNames.length - 1);
      assert.equal(result.invalidSamples[0]?.entry, fixtureNames[0]);
      assert.match(result.invalidSamples[0]?.reason ?? '', /CRC-32/);

      const junk = path.join(dir, 'junk.zip');
      await writeFile(junk, 'this is not an archive at all');
      await assert.rejects(importZip(store, junk), ZipError);
      await writeFile(junk, bytes.subarray(0, bytes.length - 30));
      await assert.rejects(importZip(store, junk), ZipError);
    },
  );

  it('imports a directory recursively, counting files that are not OSV records', async () => {
    const tree = path.join(dir, `tree-${Date.now()}`);
    await mkdir(path.join(tree, 'npm', 'nested'), { recursive: true });
    await copyFile(path.join(FIXTURES, 'GHSA-c2qf-rxjj-qqgw.json'), path.join(tree, 'npm', 'a.json'));
    await copyFile(
      path.join(FIXTURES, 'GHSA-xvch-5gv4-984h.json'),
      path.join(tree, 'npm', 'nested', 'b.json'),
    );
    await copyFile(path.join(FIXTURES, 'DSA-3029-1.json'), path.join(tree, 'DSA-3029-1.json'));
    await writeFile(path.join(tree, 'README.md'), 'not a record');
    await writeFile(path.join(tree, 'broken.json'), '{"id": "BROKEN-1", ');
    await writeFile(path.join(tree, 'npm', 'no-modified.json'), JSON.stringify({ id: 'NOMOD-1' }));
    const result = await importDirectory(store, tree);
    assert.deepEqual([result.added, result.invalid], [3, 2]);
    assert.deepEqual(
      result.invalidSamples.map((s) => [s.entry, s.id]),
      [
        ['broken.json', null],
        [path.join('npm', 'no-modified.json'), 'NOMOD-1'],
      ],
    );
    assert.match(result.invalidSamples[1]?.reason ?? '', /modified/);
    const kind = await importPath(store, tree);
    assert.equal(kind.kind, 'directory');
    assert.equal(kind.unchanged, 3);
  });

  it('updates a record with a later modified time and stops matching a withdrawn one', async () => {
    const semver = await fixture('GHSA-c2qf-rxjj-qqgw.json');
    const minimist = await fixture('GHSA-xvch-5gv4-984h.json');
    await importRecords(store, [semver, minimist]);
    const key = { ecosystem: 'npm', name: 'semver' };
    assert.equal((await store.candidates([key])).length, 1);

    const withdrawn = { ...semver, modified: '2024-01-01T00:00:00Z', withdrawn: '2024-01-01T00:00:00Z' };
    const older = { ...minimist, modified: '2020-01-01T00:00:00Z', summary: 'older' };
    const result = await importRecords(store, [withdrawn, older]);
    assert.deepEqual([result.added, result.updated, result.unchanged], [0, 1, 1]);
    assert.deepEqual(result.changed, [key]);
    assert.equal(result.revision, 2);
    assert.deepEqual(await store.candidates([key]), []);
    assert.equal(
      (await store.get('GHSA-c2qf-rxjj-qqgw'))?.withdrawn?.toISOString(),
      '2024-01-01T00:00:00.000Z',
    );
    assert.match((await store.get('GHSA-xvch-5gv4-984h'))?.record ?? '', /Prototype Pollution/);
  });

  it('passes over invalid records of any kind, writing the rest in batches', async () => {
    const records: unknown[] = [
      await fixture('GHSA-c2qf-rxjj-qqgw.json'),
      'not json',
      42,
      null,
      { id: 'X-1', modified: 'yesterday' },
      JSON.stringify(await fixture('GHSA-v845-jxx5-vc9f.json')),
      {
        id: 'X-2',
        modified: '2024-01-01T00:00:00Z',
        affected: [{ ranges: [{ type: 'ECOSYSTEM', events: [] }] }],
      },
      await fixture('USN-2169-2.json'),
      ...Array.from({ length: 12 }, (_, i) => ({ id: `BAD-${i}` })),
    ];
    async function* stream(): AsyncGenerator<unknown> {
      yield* records;
    }
    const result = await importRecords(store, stream(), { batchSize: 2, source: 'api' });
    assert.equal(result.added, 3);
    assert.equal(result.invalid, records.length - 3);
    assert.equal(result.invalidSamples.length, 10);
    assert.deepEqual(
      result.invalidSamples.slice(0, 5).map((s) => [s.entry, s.id]),
      [
        ['#1', null],
        ['#2', null],
        ['#3', null],
        ['#4', 'X-1'],
        ['#6', 'X-2'],
      ],
    );
    // Three valid records in batches of two: two transactions, each growing the revision.
    assert.equal(result.revision, 2);
  });

  it('imports a JSON file holding an array of records', async () => {
    const file = path.join(dir, `records-${Date.now()}.json`);
    await writeFile(
      file,
      JSON.stringify([await fixture('DSA-3029-1.json'), await fixture('GHSA-v845-jxx5-vc9f.json'), {}]),
    );
    const result = await importPath(store, file);
    assert.equal(result.kind, 'json');
    assert.deepEqual([result.added, result.invalid], [2, 1]);
    assert.equal(result.invalidSamples[0]?.entry, `${path.basename(file)}#2`);
  });
});
