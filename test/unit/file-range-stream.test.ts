import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';

import { BufferPool } from '../../src/storage/buffer-pool.ts';
import { FileRangeStream } from '../../src/storage/file-range-stream.ts';

const MiB = 1 << 20;

describe('FileRangeStream', () => {
  let dir: string;
  let file: string;
  let content: Buffer;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-frs-'));
    file = path.join(dir, 'data');
    content = randomBytes(5 * MiB + 12_345);
    await writeFile(file, content);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  /** An HTTP server that pipes [start, end) of the file with a FileRangeStream built on `pool`. */
  async function serve(
    pool: BufferPool,
    onStream?: (s: FileRangeStream, fd: number) => void,
  ): Promise<Server> {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const start = Number(url.searchParams.get('start'));
      const end = Number(url.searchParams.get('end'));
      const fd = openSync(file, 'r');
      const stream = new FileRangeStream(fd, start, end, pool);
      onStream?.(stream, fd);
      res.setHeader('Content-Length', String(end - start));
      stream.pipe(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  function get(server: Server, start: number, end: number): Promise<Buffer> {
    const { port } = server.address() as AddressInfo;
    return new Promise((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: `/?start=${start}&end=${end}` }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
  }

  it('sends exactly the requested range to an HTTP response, for sizes around the buffer sizes', async () => {
    const pool = new BufferPool(MiB, 4);
    const server = await serve(pool);
    try {
      const ranges: [number, number][] = [
        [0, 0],
        [0, 1],
        [7, 7 + 64 * 1024],
        [0, 64 * 1024 + 1],
        [3, 3 + MiB],
        [0, MiB + 1],
        [MiB - 1, 3 * MiB + 17],
        [0, content.length],
        [content.length - 5, content.length],
      ];
      for (const [start, end] of ranges) {
        const body = await get(server, start, end);
        assert.equal(body.length, end - start, `length of [${start}, ${end})`);
        assert.ok(body.equals(content.subarray(start, end)), `bytes of [${start}, ${end})`);
      }
      assert.equal(pool.lent, 0, 'every pooled buffer is returned');
    } finally {
      server.close();
    }
  });

  it('keeps every transfer intact when concurrent transfers exhaust the pool', async () => {
    const pool = new BufferPool(MiB, 3);
    const server = await serve(pool);
    try {
      const ranges = Array.from({ length: 12 }, (_, i) => [i * 1000, content.length - i * 777] as const);
      const bodies = await Promise.all(ranges.map(([s, e]) => get(server, s, e)));
      bodies.forEach((body, i) => {
        const [s, e] = ranges[i]!;
        assert.ok(body.equals(content.subarray(s, e)), `transfer ${i} intact`);
      });
      assert.equal(pool.lent, 0);
    } finally {
      server.close();
    }
  });

  it('reuses a buffer only after its bytes left, so a slow client gets intact bytes', async () => {
    // Larger than what loopback TCP buffers can hold in flight (tcp_wmem + tcp_rmem maxima, up to ~36 MiB), so
    // while the client stalls the server's writes stay queued in the process and hold on to their buffers.
    const bigFile = path.join(dir, 'big');
    const big = randomBytes(64 * MiB);
    await writeFile(bigFile, big);
    const pool = new BufferPool(MiB, 2);
    const server = createServer((_req, res) => {
      res.setHeader('Content-Length', String(big.length));
      new FileRangeStream(openSync(bigFile, 'r'), 0, big.length, pool).pipe(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const body = await new Promise<Buffer>((resolve, reject) => {
        request({ host: '127.0.0.1', port, path: '/' }, (res) => {
          const chunks: Buffer[] = [];
          res.pause();
          setTimeout(() => res.resume(), 500);
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        })
          .on('error', reject)
          .end();
      });
      assert.equal(body.length, big.length);
      assert.ok(body.equals(big), 'bytes intact');
      assert.equal(pool.lent, 0);
    } finally {
      server.close();
      await rm(bigFile);
    }
  });

  it('stops, closes the file and frees its buffers when the client goes away mid-transfer', async () => {
    const pool = new BufferPool(MiB, 4);
    let stream: FileRangeStream | undefined;
    let fd = -1;
    const server = await serve(pool, (s, opened) => {
      stream = s;
      fd = opened;
    });
    try {
      const { port } = server.address() as AddressInfo;
      await new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path: `/?start=0&end=${content.length}` }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => {});
        req.end();
      });
      const s = stream as FileRangeStream;
      if (!s.closed) await new Promise((resolve) => s.once('close', resolve));
      assert.ok(s.destroyed, 'the stream is destroyed');
      assert.throws(() => fstatSync(fd), { code: 'EBADF' }, 'the descriptor is closed');
      for (let i = 0; i < 100 && pool.lent > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(pool.lent, 0, 'buffers are given back');
    } finally {
      server.close();
    }
  });

  it('reads as an ordinary stream with fresh chunks, so a PassThrough keeps correct bytes', async () => {
    const pool = new BufferPool(MiB, 4);
    const fd = openSync(file, 'r');
    const stream = new FileRangeStream(fd, 100, content.length - 100, pool);
    const through = new PassThrough();
    const chunks: Buffer[] = [];
    let mostLent = 0;
    through.on('data', (c: Buffer) => {
      chunks.push(c);
      mostLent = Math.max(mostLent, pool.lent);
    });
    await pipeline(stream, through);
    assert.ok(Buffer.concat(chunks).equals(content.subarray(100, content.length - 100)));
    assert.equal(mostLent, 0, 'the ordinary path never borrows pooled buffers');
    await new Promise((resolve) => (stream.closed ? resolve(null) : stream.once('close', resolve)));
    assert.throws(() => fstatSync(fd), { code: 'EBADF' }, 'the descriptor is closed once the stream ends');
  });

  it('hands a lent descriptor back through releaseFd exactly once instead of closing it', async () => {
    const fd = openSync(file, 'r');
    try {
      let released = 0;
      const onRelease = (): void => {
        released++;
      };
      // To the end on the ordinary path, to the end on the fast path, and destroyed part way.
      const whole = new FileRangeStream(fd, 0, 3 * MiB, new BufferPool(MiB, 2), onRelease);
      const hash = createHash('sha256');
      await pipeline(whole, hash);
      assert.equal(
        hash.digest('hex'),
        createHash('sha256')
          .update(content.subarray(0, 3 * MiB))
          .digest('hex'),
      );

      const pool = new BufferPool(MiB, 2);
      const server = createServer((_req, res) => {
        res.setHeader('Content-Length', String(2 * MiB));
        new FileRangeStream(fd, MiB, 3 * MiB, pool, onRelease).pipe(res);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const got = await get(server, 0, 0);
        assert.ok(got.equals(content.subarray(MiB, 3 * MiB)));
      } finally {
        server.close();
      }

      const cut = new FileRangeStream(fd, 0, content.length, new BufferPool(MiB, 2), onRelease);
      await new Promise<void>((resolve) => cut.once('readable', resolve));
      cut.destroy();
      await new Promise((resolve) => (cut.closed ? resolve(null) : cut.once('close', resolve)));

      for (let i = 0; i < 100 && released < 3; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(released, 3, 'one release per stream');
      assert.equal(fstatSync(fd).size, content.length, 'the descriptor stays open for its lender');
    } finally {
      closeSync(fd);
    }
  });

  it('hashes to the digest of its range when piped into a hash', async () => {
    const hash = createHash('sha256');
    await pipeline(new FileRangeStream(openSync(file, 'r'), MiB, 4 * MiB), hash);
    assert.equal(
      hash.digest('hex'),
      createHash('sha256')
        .update(content.subarray(MiB, 4 * MiB))
        .digest('hex'),
    );
  });

  it('fails when the file is shorter than the range', async () => {
    const stream = new FileRangeStream(openSync(file, 'r'), content.length - 10, content.length + 10);
    await assert.rejects(pipeline(stream, new PassThrough().resume()), /ended before the requested range/);
  });
});
