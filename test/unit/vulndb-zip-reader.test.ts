/**
 * The ZIP reader on archives written by a test encoder (`test/helpers/zip.ts`) where Info-ZIP would not write
 * them: every size, offset and count saturated so that only the ZIP64 records carry them, data descriptors with
 * zero sizes in the local headers, stored entries, a wrong declared size, and damaged end records. The archives
 * are also checked with `unzip -t` when it is installed, so the encoder itself is held to a real reader.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readZip, ZipError } from '../../src/scanning/vulndb/zip-reader.ts';
import { zipArchive } from '../helpers/zip.ts';

function hasUnzip(): boolean {
  try {
    execFileSync('unzip', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const UNZIP = hasUnzip();

const ENTRIES = [
  { name: 'A-1.json', data: Buffer.from(JSON.stringify({ id: 'A-1', text: 'x'.repeat(5000) })) },
  { name: 'dir/', data: Buffer.alloc(0) },
  { name: 'B-ü.json', data: Buffer.from('{"id":"B"}') },
  { name: 'notes.txt', data: Buffer.from('skip me') },
];

describe('zip reader', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-zip-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function write(name: string, bytes: Buffer): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    return file;
  }

  async function read(file: string): Promise<[string, string | undefined, string | undefined][]> {
    const out: [string, string | undefined, string | undefined][] = [];
    for await (const e of readZip(file, { want: (n) => n.endsWith('.json') })) {
      out.push([e.entry.name, e.data?.toString('utf8'), e.error]);
    }
    return out;
  }

  const expected = [
    ['A-1.json', ENTRIES[0]!.data.toString('utf8'), undefined],
    ['B-ü.json', '{"id":"B"}', undefined],
  ];

  for (const options of [
    { method: 8 as const },
    { method: 0 as const },
    { dataDescriptor: true },
    { zip64: true },
    { zip64: true, dataDescriptor: true, method: 0 as const },
  ]) {
    it(`reads ${JSON.stringify(options)}`, async () => {
      const file = await write(
        `${JSON.stringify(options).replace(/\W+/g, '-')}.zip`,
        zipArchive(ENTRIES, options),
      );
      if (UNZIP) execFileSync('unzip', ['-tq', file], { stdio: 'pipe' });
      assert.deepEqual(await read(file), expected);
    });
  }

  it('reports an entry whose declared size is wrong, and goes on', async () => {
    const bytes = zipArchive(ENTRIES, { method: 0 });
    // The first central directory entry's uncompressed size (offset 24 in it) claims one byte more.
    const central = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    bytes.writeUInt32LE(bytes.readUInt32LE(central + 24) + 1, central + 24);
    const result = await read(await write('size.zip', bytes));
    assert.match(result[0]?.[2] ?? '', /size/);
    assert.deepEqual(result[1], expected[1]);
  });

  it('refuses archives without an end record or with a directory outside the file', async () => {
    await assert.rejects(read(await write('empty.zip', Buffer.alloc(0))), ZipError);
    const bytes = zipArchive(ENTRIES);
    await assert.rejects(read(await write('cut.zip', bytes.subarray(0, bytes.length - 10))), ZipError);
    const moved = Buffer.from(bytes);
    moved.writeUInt32LE(bytes.length + 100, moved.length - 6);
    await assert.rejects(read(await write('moved.zip', moved)), ZipError);
    const z64 = zipArchive(ENTRIES, { zip64: true });
    // The ZIP64 locator points past the end of the file.
    const locator = z64.length - 22 - 20;
    z64.writeBigUInt64LE(BigInt(z64.length * 2), locator + 8);
    await assert.rejects(read(await write('z64.zip', z64)), ZipError);
  });
});
