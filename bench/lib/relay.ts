/**
 * A byte-counting HTTP relay on loopback, between a caching registry and its upstream: it forwards every request
 * as it is and counts the body bytes of the upstream's answers to blob GETs, which is what "how often did the
 * upstream send this blob" means for a pull-through cache.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ByteRelay {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Body bytes of blob GET responses relayed from the upstream, per path (`/v2/<repo>/blobs/<digest>`). */
  blobBytes(pathPart: string): number;
  /** Blob GETs forwarded whose path contains `pathPart`. */
  blobGets(pathPart: string): number;
  close(): Promise<void>;
}

/** Starts a relay to `target` (`http://host:port`). */
export async function startByteRelay(target: string): Promise<ByteRelay> {
  const upstream = new URL(target);
  const bytes = new Map<string, number>();
  const gets = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const counted = req.method === 'GET' && path.includes('/blobs/sha256:');
    if (counted) gets.set(path, (gets.get(path) ?? 0) + 1);
    const forward = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path,
        headers: { ...req.headers, host: upstream.host },
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        if (counted) {
          upstreamRes.on('data', (chunk: Buffer) => bytes.set(path, (bytes.get(path) ?? 0) + chunk.length));
        }
        upstreamRes.on('error', () => res.destroy());
        upstreamRes.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sum = (map: Map<string, number>, part: string): number =>
    [...map].filter(([p]) => p.includes(part)).reduce((n, [, v]) => n + v, 0);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    blobBytes: (part) => sum(bytes, part),
    blobGets: (part) => sum(gets, part),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
