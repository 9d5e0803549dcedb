/**
 * Connection limits on real sockets (`http.headersTimeout`, `http.keepAliveTimeout`, `http.bodyIdleTimeout`,
 * `http.maxConnections`), configured short so the tests stay fast: a client that sends headers slowly, idles on a
 * keep-alive connection or stalls in a body is cut, a stalled upload can be resumed from its last acknowledged
 * byte, connections beyond the ceiling are closed, and a slow upload that keeps flowing is never cut.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createTestRegistry, type TestRegistry } from '../helpers/app.ts';
import {
  completeUpload,
  locationPath,
  patchChunk,
  rangeSize,
  request,
  sha256,
  sleep,
  slowBody,
  startUpload,
} from '../helpers/http-client.ts';

/** Any wait in these tests gives up after this long: what should happen takes well under a second. */
const BOUND_MS = 10_000;

/** A raw client connection: what it received, and whether the server closed it. */
class Connection {
  readonly socket: net.Socket;
  private readonly chunks: Buffer[] = [];
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => this.chunks.push(d));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static open(base: string): Promise<Connection> {
    const url = new URL(base);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname, () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }

  received(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  /** Waits until the server closed the connection; rejects after BOUND_MS (the server let it hang). */
  async waitClosed(what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.closed,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${what}: still open after ${BOUND_MS} ms`)), BOUND_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.socket.destroy();
    }
  }

  /** Waits until `pattern` has been received. */
  async waitFor(pattern: RegExp): Promise<void> {
    const deadline = Date.now() + BOUND_MS;
    while (!pattern.test(this.received())) {
      if (Date.now() > deadline) throw new Error(`never received ${pattern}: ${this.received()}`);
      await sleep(10);
    }
  }
}

/** Retries `attempt` until it succeeds; its last error after BOUND_MS. */
async function eventually<T>(what: string, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + BOUND_MS;
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what} kept failing for ${BOUND_MS} ms`, { cause: e });
      await sleep(20);
    }
  }
}

async function listen(overrides: Record<string, unknown>): Promise<{ reg: TestRegistry; base: string }> {
  const reg = await createTestRegistry(overrides);
  const base = await reg.app.listen({ host: '127.0.0.1', port: 0 });
  return { reg, base };
}

describe('connection timeouts', () => {
  let reg: TestRegistry;
  let base: string;
  before(async () => {
    ({ reg, base } = await listen({
      'http.headersTimeout': '300ms',
      'http.keepAliveTimeout': '400ms',
      'http.bodyIdleTimeout': '300ms',
    }));
  });
  after(() => reg.dispose());

  it('answers 408 and closes a connection that does not finish its headers in time', async () => {
    const c = await Connection.open(base);
    c.socket.write('GET /v2/ HTTP/1.1\r\nHost: registry\r\nUser-Agent: slo');
    await c.waitClosed('slow headers');
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
  });

  it('closes a connection that sends nothing at all', async () => {
    const c = await Connection.open(base);
    await c.waitClosed('silent connection');
  });

  it('closes an idle keep-alive connection after its last response', async () => {
    const c = await Connection.open(base);
    c.socket.write('GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n');
    await c.waitFor(/^HTTP\/1\.1 200 [^]*\r\n\r\n\{\}/);
    await c.waitClosed('idle keep-alive connection');
    assert.equal(c.received().match(/HTTP\/1\.1 /g)?.length, 1, 'one response, no 408 after it');
  });

  it('cuts a stalled PATCH body and releases the upload, which resumes from the last acknowledged byte', async () => {
    const first = randomBytes(64 * 1024);
    const second = randomBytes(48 * 1024);
    const start = await startUpload(base, 'conn/stall');
    const location = await patchChunk(base, start, first, 0);

    // The next chunk: headers and a part of the body, then silence.
    const c = await Connection.open(base);
    c.socket.write(
      `PATCH ${location} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\n` +
        `Content-Range: ${first.length}-${first.length + second.length - 1}\r\n` +
        `Content-Length: ${second.length}\r\n\r\n`,
    );
    c.socket.write(second.subarray(0, 10_000));
    await c.waitClosed('stalled PATCH');

    const status = await request(base, location);
    assert.equal(status.status, 204);
    assert.equal(rangeSize(status), first.length, 'the upload still has the acknowledged bytes only');
    // The cut request lets go of the upload as soon as its handler has seen the error, which may be a moment after
    // the client saw the connection close: until then a PATCH gets 416, as a client that resumes at once may see.
    // Were the upload never released, every attempt would.
    const resumed = await eventually('the PATCH that resumes the upload', () =>
      patchChunk(base, location, second, first.length),
    );
    const digest = sha256(Buffer.concat([first, second]));
    const done = await completeUpload(base, resumed, digest);
    assert.equal(done.status, 201, done.body.toString());
    const blob = await request(base, `/v2/conn/stall/blobs/${digest}`);
    assert.equal(blob.status, 200);
    assert.ok(blob.body.equals(Buffer.concat([first, second])));
  });

  it('never cuts an upload that keeps flowing, however long it takes in all', async () => {
    // 12 pieces 150 ms apart: the request lasts longer than every timeout, but bytes never stop for long.
    const data = randomBytes(12 * 1024);
    const digest = sha256(data);
    const res = await request(base, `/v2/conn/slow/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: slowBody(data, 1024, 150),
    });
    assert.equal(res.status, 201, res.body.toString());
    assert.equal(locationPath(res), `/v2/conn/slow/blobs/${digest}`);
  });
});

describe('connection ceiling', () => {
  let reg: TestRegistry;
  let base: string;
  before(async () => {
    ({ reg, base } = await listen({ 'http.maxConnections': 2 }));
  });
  after(() => reg.dispose());

  it('closes connections beyond http.maxConnections at once, and accepts again when one ends', async () => {
    const held = [await Connection.open(base), await Connection.open(base)];
    for (const c of held) {
      c.socket.write('GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n');
      await c.waitFor(/^HTTP\/1\.1 200 /);
    }
    const refused = await Connection.open(base);
    refused.socket.write('GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n');
    await refused.waitClosed('connection over the ceiling');
    assert.equal(refused.received(), '', 'closed without an answer');

    held[0]?.socket.destroy();
    // The server learns of the close asynchronously; a new connection is accepted once it has.
    const res = await eventually('a request once a connection ended', async () => {
      const r = await request(base, '/v2/');
      assert.equal(r.status, 200);
      return r;
    });
    assert.equal(res.body.toString(), '{}');
    held[1]?.socket.destroy();
  });
});
