/**
 * A scanner adapter double: a real HTTP server on 127.0.0.1 speaking Harbor's Pluggable Scanner API v1.1. It
 * serves metadata, accepts scan requests (recording them, the registry URL and bearer token included, so a test
 * can check what the adapter was given), answers a report poll with 302 + `Refresh-After` a configurable number
 * of times and then 200 with the report the test's function computes. Failure modes per operation: 500 with an
 * error document, a malformed JSON body, or no answer at all.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const SCAN_REQUEST_TYPE = 'application/vnd.scanner.adapter.scan.request+json; version=1.0';
export const REPORT_TYPES = [
  'application/vnd.security.vulnerability.report; version=1.1',
  'application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.1',
];
const ERROR_TYPE = 'application/vnd.scanner.adapter.error+json; version=1.0';

/** A scan request as the double received it. */
export interface RecordedScanRequest {
  readonly id: string;
  /** The parsed body. */
  readonly body: {
    registry: { url: string; authorization?: string };
    artifact: { repository: string; digest: string; tag?: string; mime_type?: string };
  };
  readonly contentType: string | undefined;
  /** The `Authorization` header sent to the adapter itself. */
  readonly adapterAuthorization: string | undefined;
  readonly registryUrl: string;
  /** The token of `registry.authorization` when it is `Bearer <token>`. */
  readonly bearerToken: string | null;
}

/** How one operation misbehaves: 500 with an error document, a body that is not JSON, or no answer. */
export type FailureMode = 'error-500' | 'malformed-json' | 'hang';

export interface HarborScannerOptions {
  /** The report of a scan request (any JSON value: a test can serve a malformed one). */
  report(request: RecordedScanRequest): unknown;
  /** 302 answers before the report (default 0). */
  pendingPolls?: number;
  /** The `Refresh-After` value of a 302 (default `'1'`); null sends none. */
  refreshAfter?: string | null;
  /** When set, every request must carry exactly this `Authorization`, else 401. */
  adapterAuthorization?: string;
  /** The metadata document (default: a Trivy-like scanner). */
  metadata?: unknown;
}

export interface HarborScannerDouble {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly scanRequests: RecordedScanRequest[];
  /** Every request: method, path and headers. */
  readonly requests: { method: string; path: string; headers: IncomingHttpHeaders }[];
  /** Report polls per scan request id. */
  readonly polls: Map<string, number>;
  /** Failure modes per operation; set them at any time. */
  readonly failures: { metadata?: FailureMode; scan?: FailureMode; report?: FailureMode };
  close(): Promise<void>;
}

export const DEFAULT_METADATA = {
  scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.58.1' },
  capabilities: [
    {
      type: 'vulnerability',
      consumes_mime_types: [
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json',
      ],
      produces_mime_types: REPORT_TYPES.slice(0, 1),
    },
  ],
  properties: {
    'harbor.scanner-adapter/scanner-type': 'os-package-vulnerability',
    'harbor.scanner-adapter/vulnerability-database-updated-at': '2026-12-07T18:12:05Z',
  },
};

export async function startHarborScanner(options: HarborScannerOptions): Promise<HarborScannerDouble> {
  const scanRequests: RecordedScanRequest[] = [];
  const requests: HarborScannerDouble['requests'] = [];
  const polls = new Map<string, number>();
  const failures: HarborScannerDouble['failures'] = {};
  const hanging = new Set<ServerResponse>();

  const send = (res: ServerResponse, status: number, type: string, body: unknown, headers = {}) => {
    res.writeHead(status, { 'content-type': type, ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, message: string) =>
    send(res, status, ERROR_TYPE, { error: { message } });
  /** Applies the operation's failure mode; true when it answered (or chose not to). */
  const fail = (res: ServerResponse, mode: FailureMode | undefined, type: string): boolean => {
    if (mode === 'error-500') error(res, 500, 'scanner exploded');
    else if (mode === 'malformed-json') send(res, 200, type, '{"scanner": {"name": "Trivy", ');
    else if (mode === 'hang') hanging.add(res);
    return mode !== undefined;
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '';
      requests.push({ method: req.method ?? '', path, headers: req.headers });
      if (
        options.adapterAuthorization !== undefined &&
        req.headers.authorization !== options.adapterAuthorization
      )
        return error(res, 401, 'unauthorized');

      if (req.method === 'GET' && path === '/api/v1/metadata') {
        const type = 'application/vnd.scanner.adapter.metadata+json; version=1.0';
        if (fail(res, failures.metadata, type)) return;
        return send(res, 200, type, options.metadata ?? DEFAULT_METADATA);
      }

      if (req.method === 'POST' && path === '/api/v1/scan') {
        const type = 'application/vnd.scanner.adapter.scan.response+json; version=1.0';
        if (req.headers['content-type'] !== SCAN_REQUEST_TYPE)
          return error(res, 400, 'unsupported content type');
        let body: RecordedScanRequest['body'];
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RecordedScanRequest['body'];
        } catch {
          return error(res, 400, 'invalid JSON');
        }
        if (!body?.registry?.url || !body.artifact?.repository || !body.artifact.digest)
          return error(res, 422, 'missing registry.url, artifact.repository or artifact.digest');
        if (fail(res, failures.scan, type)) return;
        const id = randomUUID();
        const bearer = /^Bearer (.+)$/.exec(body.registry.authorization ?? '');
        scanRequests.push({
          id,
          body,
          contentType: req.headers['content-type'],
          adapterAuthorization: req.headers.authorization,
          registryUrl: body.registry.url,
          bearerToken: bearer ? bearer[1]! : null,
        });
        polls.set(id, 0);
        return send(res, 202, type, { id });
      }

      const report = /^\/api\/v1\/scan\/([^/]+)\/report$/.exec(path);
      if (req.method === 'GET' && report) {
        const id = decodeURIComponent(report[1]!);
        const request = scanRequests.find((r) => r.id === id);
        if (!request) return error(res, 404, `scan request ${id} not found`);
        const accept = req.headers.accept ?? '';
        if (!REPORT_TYPES.includes(accept)) return error(res, 422, `unsupported report type: ${accept}`);
        const count = (polls.get(id) ?? 0) + 1;
        polls.set(id, count);
        if (fail(res, failures.report, accept)) return;
        if (count <= (options.pendingPolls ?? 0)) {
          const refresh = options.refreshAfter === undefined ? '1' : options.refreshAfter;
          res.writeHead(302, refresh === null ? {} : { 'refresh-after': refresh });
          return res.end();
        }
        return send(res, 200, accept, options.report(request));
      }

      error(res, 404, 'no such operation');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    scanRequests,
    requests,
    polls,
    failures,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
