/**
 * Builds rpm databases for tests: header blobs encoded as rpm stores them in rpmdb.sqlite, and the SQLite file
 * itself (the `Packages` table rpm >= 4.16 creates), so that cases rpm would not write can be tested too.
 */
import { BetterSqlite3 } from '../../src/metadata/dialects.ts';

/** A header entry: a string (STRING, type 6) or a number (INT32, type 4). */
export type HeaderValue = string | number;

/**
 * An rpm header blob without the leading magic: entry count and data size (big-endian), 16-byte entries (tag,
 * type, offset, count), then the data store, with INT32 values 4-byte aligned as rpm aligns them.
 */
export function encodeRpmHeader(tags: ReadonlyMap<number, HeaderValue>): Buffer {
  const entries: Buffer[] = [];
  const data: Buffer[] = [];
  let size = 0;
  for (const [tag, value] of tags) {
    const entry = Buffer.alloc(16);
    entry.writeUInt32BE(tag, 0);
    if (typeof value === 'number') {
      const pad = (4 - (size % 4)) % 4;
      if (pad > 0) {
        data.push(Buffer.alloc(pad));
        size += pad;
      }
      entry.writeUInt32BE(4, 4);
      const bytes = Buffer.alloc(4);
      bytes.writeUInt32BE(value, 0);
      entry.writeUInt32BE(size, 8);
      data.push(bytes);
      size += 4;
    } else {
      entry.writeUInt32BE(6, 4);
      entry.writeUInt32BE(size, 8);
      const bytes = Buffer.from(`${value}\0`);
      data.push(bytes);
      size += bytes.length;
    }
    entry.writeUInt32BE(1, 12);
    entries.push(entry);
  }
  const intro = Buffer.alloc(8);
  intro.writeUInt32BE(entries.length, 0);
  intro.writeUInt32BE(size, 4);
  return Buffer.concat([intro, ...entries, ...data]);
}

/**
 * Writes an rpmdb.sqlite at `path` with the given header blobs in `Packages` (hnum from 1), in WAL mode as rpm
 * keeps it, plus `padding` bytes in a table of its own to make the file as large as a real database.
 */
export function writeRpmdb(path: string, blobs: readonly Buffer[], padding = 0): void {
  const db = new BetterSqlite3(path);
  try {
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)');
    const insert = db.prepare('INSERT INTO Packages (blob) VALUES (?)');
    for (const blob of blobs) insert.run(blob);
    if (padding > 0) {
      db.exec('CREATE TABLE Padding (data BLOB)');
      db.prepare('INSERT INTO Padding VALUES (?)').run(Buffer.alloc(padding, 0x5a));
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}
