/**
 * A lean HTTP/1.1 client for the pull workloads. It sends a GET over a plain socket, reads into one reused buffer
 * per connection (net.Socket's `onread`), parses the response head itself, and hands body bytes to a synchronous
 * check while they are still in that buffer.
 *
 * Why: Node's http client allocates a buffer and runs the stream machinery for every 64 KiB read. On a 2-core
 * machine shared with the registry, that made the load generator, not the registry, the limit of every pull
 * (about 0.8 GiB/s for both registries, each using well under a core). This client does what a pull needs and no
 * more: GET, keep-alive, bodies framed by Content-Length (both registries send one for blobs). Anything else is
 * an error, never a silent misread.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  readonly status: number;
  /** Lower-cased header names; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  /** The body of a response outside 2xx (small: an error document); empty for 2xx, whose bytes went to onBody. */
  readonly errorBody: string;
}

interface Pending {
  resolve(res: RawResponse): void;
  reject(err: Error): void;
  onBody(chunk: Buffer): void;
  head: Buffer;
  status: number;
  headers: Record<string, string>;
  remaining: number;
  errorChunks: Buffer[];
  inBody: boolean;
}

const HEAD_END = Buffer.from('\r\n\r\n');
const MAX_HEAD = 64 * 1024;

/** One keep-alive connection; one request at a time. */
export class RawConnection {
  private pending: Pending | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: Socket) {
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  /** Connects to `host:port`, reading into a reused buffer of `readBufferBytes`. */
  static open(host: string, port: number, readBufferBytes: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      let conn: RawConnection | undefined;
      const socket = connect({
        host,
        port,
        noDelay: true,
        onread: {
          buffer: Buffer.allocUnsafe(readBufferBytes),
          callback: (n: number, buf: Uint8Array) => {
            conn?.receive(Buffer.from(buf.buffer, buf.byteOffset, n));
            return true;
          },
        },
      });
      socket.once('connect', () => {
        conn = new RawConnection(socket);
        resolve(conn);
      });
      socket.once('error', reject);
    });
  }

  /** Whether the connection can take another request. */
  get usable(): boolean {
    return this.failure === null && !this.socket.destroyed;
  }

  /**
   * GETs `path`; for a 2xx response every body chunk goes to `onBody` (synchronously, while the bytes are valid:
   * the buffer is reused for the next read). Resolves once the whole body has arrived. `onBody` throwing fails
   * the request and closes the connection.
   */
  get(
    path: string,
    headers: Readonly<Record<string, string>>,
    onBody: (chunk: Buffer) => void,
  ): Promise<RawResponse> {
    if (this.pending) return Promise.reject(new Error('a request is already in flight on this connection'));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = {
        resolve,
        reject,
        onBody,
        head: Buffer.alloc(0),
        status: 0,
        headers: {},
        remaining: 0,
        errorChunks: [],
        inBody: false,
      };
      const host = `${this.socket.remoteAddress}:${this.socket.remotePort}`;
      const lines = [
        `GET ${path} HTTP/1.1`,
        `Host: ${host}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ];
      this.socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(data: Buffer): void {
    const p = this.pending;
    if (!p) {
      this.fail(new Error(`${data.length} unexpected bytes with no request in flight`));
      return;
    }
    try {
      let body = data;
      if (!p.inBody) {
        const buf = p.head.length === 0 ? data : Buffer.concat([p.head, data]);
        const end = buf.indexOf(HEAD_END);
        if (end === -1) {
          if (buf.length > MAX_HEAD) throw new Error('response head too large');
          p.head = Buffer.from(buf); // a copy: `data` is the reused read buffer
          return;
        }
        this.parseHead(p, buf.subarray(0, end).toString('latin1'));
        body = buf.subarray(end + HEAD_END.length);
        p.head = Buffer.alloc(0);
        p.inBody = true;
      }
      if (body.length > p.remaining)
        throw new Error(`${body.length - p.remaining} bytes beyond Content-Length`);
      p.remaining -= body.length;
      if (body.length > 0) {
        if (p.status >= 200 && p.status < 300) p.onBody(body);
        else p.errorChunks.push(Buffer.from(body));
      }
      if (p.remaining === 0) {
        this.pending = null;
        p.resolve({
          status: p.status,
          headers: p.headers,
          errorBody: Buffer.concat(p.errorChunks).toString('utf8'),
        });
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private parseHead(p: Pending, head: string): void {
    const [statusLine, ...lines] = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
    if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    p.status = Number(m[1]);
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`bad header line ${JSON.stringify(line)}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      p.headers[name] = p.headers[name] === undefined ? value : `${p.headers[name]}, ${value}`;
    }
    if (p.headers['transfer-encoding'] !== undefined) throw new Error('chunked responses are not supported');
    const length = Number(p.headers['content-length']);
    if (!Number.isSafeInteger(length) || length < 0)
      throw new Error('response without a valid Content-Length');
    p.remaining = length;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const p = this.pending;
    this.pending = null;
    if (!this.socket.destroyed) this.socket.destroy();
    p?.reject(err);
  }
}

/** Keep-alive connections to one registry, opened on demand. */
export class RawPool {
  private readonly idle: RawConnection[] = [];
  private readonly all = new Set<RawConnection>();
  private readonly host: string;
  private readonly port: number;

  /** @param readBufferBytes size of each connection's reused read buffer */
  constructor(
    baseUrl: string,
    private readonly readBufferBytes = 1024 * 1024,
  ) {
    const u = new URL(baseUrl);
    if (u.protocol !== 'http:') throw new Error('the raw client speaks plain HTTP only');
    this.host = u.hostname;
    this.port = Number(u.port);
  }

  /** GETs `path` on an idle connection (or a new one); see RawConnection.get. */
  async get(
    path: string,
    headers: Readonly<Record<string, string>>,
    onBody: (chunk: Buffer) => void,
  ): Promise<RawResponse> {
    let conn = this.idle.pop();
    while (conn && !conn.usable) conn = this.idle.pop();
    if (!conn) {
      conn = await RawConnection.open(this.host, this.port, this.readBufferBytes);
      this.all.add(conn);
    }
    const res = await conn.get(path, headers, onBody);
    if (res.headers.connection?.toLowerCase() === 'close') conn.close();
    else this.idle.push(conn);
    return res;
  }

  close(): void {
    for (const conn of this.all) conn.close();
    this.all.clear();
    this.idle.length = 0;
  }
}
