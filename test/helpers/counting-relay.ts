/**
 * An HTTP relay between a registry under test and its upstream, on loopback: forwards every request, counts them
 * (and the bytes of the responses), and can be made to fail as an upstream does: refuse connections, answer an
 * error status, or cut response bodies short.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type RelayMode =
  | { readonly kind: 'pass' }
  /** Destroys every connection at once (a network error for the client). */
  | { readonly kind: 'down' }
  /** Answers every request with `status` (and `Retry-After` when given). */
  | { readonly kind: 'status'; readonly status: number; readonly retryAfter?: number }
  /** Forwards, but cuts bodies of blob GETs after `bytes` bytes (the connection is destroyed). */
  | { readonly kind: 'cut'; readonly bytes: number };

export interface RelayRequest {
  readonly method: string;
  readonly path: string;
}

export interface CountingRelay {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT` */
  readonly host: string;
  /** Every request forwarded or refused so far, in arrival order. */
  readonly requests: RelayRequest[];
  /** Response body bytes relayed from the upstream so far. */
  bytesRelayed(): number;
  /** How many requests matched `method` and a path ending with `suffix` (or containing it). */
  count(method: string, pathPart: string): number;
  setMode(mode: RelayMode): void;
  close(): Promise<void>;
}

/** Starts a relay to `target` (`http://host:port`). */
export async function startCountingRelay(target: string): Promise<CountingRelay> {
  const upstream = new URL(target);
  let mode: RelayMode = { kind: 'pass' };
  let bytes = 0;
  const requests: RelayRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    requests.push({ method: req.method ?? 'GET', path });
    if (mode.kind === 'down') {
      req.socket.destroy();
      return;
    }
    if (mode.kind === 'status') {
      res.writeHead(mode.status, {
        'content-type': 'application/json',
        ...(mode.retryAfter !== undefined ? { 'retry-after': String(mode.retryAfter) } : {}),
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'relay says no' }] }));
      return;
    }
    const cutAfter =
      mode.kind === 'cut' && req.method === 'GET' && path.includes('/blobs/') ? mode.bytes : null;
    const headers = { ...req.headers, host: upstream.host };
    const forward = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path, headers },
      (upstreamRes) => {
        // Redirect targets on the upstream are rewritten to go through the relay too.
        const location = upstreamRes.headers.location;
        if (location?.startsWith(upstream.origin)) {
          upstreamRes.headers.location = `http://${relayHost()}${location.slice(upstream.origin.length)}`;
        }
        // So is a token service on the upstream (a Bearer challenge's realm), so token requests are counted.
        const challenge = upstreamRes.headers['www-authenticate'];
        if (challenge?.includes(`realm="${upstream.origin}`)) {
          upstreamRes.headers['www-authenticate'] = challenge.replace(
            `realm="${upstream.origin}`,
            `realm="http://${relayHost()}`,
          );
        }
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        let sent = 0;
        upstreamRes.on('data', (chunk: Buffer) => {
          if (cutAfter !== null && sent + chunk.length > cutAfter) {
            const part = chunk.subarray(0, Math.max(0, cutAfter - sent));
            bytes += part.length;
            res.write(part);
            upstreamRes.destroy();
            res.destroy();
            return;
          }
          sent += chunk.length;
          bytes += chunk.length;
          if (!res.write(chunk)) {
            upstreamRes.pause();
            res.once('drain', () => upstreamRes.resume());
          }
        });
        upstreamRes.on('end', () => res.end());
        upstreamRes.on('error', () => res.destroy());
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
  const relayHost = (): string => `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `http://${relayHost()}`,
    host: relayHost(),
    requests,
    bytesRelayed: () => bytes,
    count: (method, pathPart) =>
      requests.filter((r) => r.method === method && r.path.includes(pathPart)).length,
    setMode(next) {
      mode = next;
      if (next.kind === 'down') for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
