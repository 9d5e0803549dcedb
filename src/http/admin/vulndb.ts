/**
 * Admin API: the vulnerability database (`/vulndb`): its status, and importing OSV data (`/vulndb/import`) as an
 * `all.zip` (`application/zip`, spooled to a temporary file, then read entry by entry) or as JSON (one record or
 * an array of records). System administrators only; the caller's right is checked before the body is read.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { VulnDbAdmin } from '../../admin/vulndb-admin.ts';
import { PayloadTooLargeError } from '../../oci/errors.ts';
import { jsonNestingExceeds, MAX_JSON_DEPTH } from '../../util/json-depth.ts';
import { bodyStream, hasBody, readBody } from '../plugins/raw-body.ts';
import { actorOf, badRequest, sendJson, stringQuery } from './request.ts';

/** Largest archive accepted (osv.dev's largest per-ecosystem archives are a few hundred megabytes). */
export const MAX_ARCHIVE_BYTES = 4 * 1024 * 1024 * 1024;
/** Largest JSON body accepted. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;

export interface VulnDbRouteOptions {
  /** Where uploaded archives are spooled while they are imported (created when missing). */
  readonly spoolDir: string;
}

function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Writes the request body to `file`, failing with 413 past MAX_ARCHIVE_BYTES. */
async function spool(request: FastifyRequest, file: string): Promise<void> {
  let total = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      if (total > MAX_ARCHIVE_BYTES) {
        done(new PayloadTooLargeError(`the archive exceeds ${MAX_ARCHIVE_BYTES} bytes`));
        return;
      }
      done(null, chunk);
    },
  });
  await pipeline(bodyStream(request), limit, createWriteStream(file, { flags: 'wx' }));
}

export function registerVulnDbRoutes(
  api: FastifyInstance,
  vulndb: VulnDbAdmin,
  options: VulnDbRouteOptions,
): void {
  api.get('/vulndb', async (request, reply) => sendJson(reply, 200, await vulndb.status(actorOf(request))));

  api.post('/vulndb/import', async (request, reply) => {
    const actor = actorOf(request);
    const source = stringQuery(request, 'source') ?? 'api';
    await vulndb.authorizeImport(actor, source);
    const type = mediaType(request);
    if (!hasBody(request)) throw badRequest('a body (an OSV all.zip or OSV JSON) is required');
    if (type === 'application/zip' || type === 'application/x-zip-compressed') {
      await mkdir(options.spoolDir, { recursive: true });
      const dir = await mkdtemp(path.join(options.spoolDir, 'import-'));
      try {
        const file = path.join(dir, 'all.zip');
        await spool(request, file);
        return sendJson(reply, 200, await vulndb.importArchive(actor, file, source));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    if (type === 'application/json') {
      const bytes = await readBody(
        request,
        MAX_JSON_BYTES,
        () => new PayloadTooLargeError(`the request body exceeds ${MAX_JSON_BYTES} bytes`),
      );
      if (jsonNestingExceeds(bytes)) {
        throw badRequest(`the body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`);
      }
      let value: unknown;
      try {
        value = JSON.parse(bytes.toString('utf8'));
      } catch (e) {
        throw badRequest(`the body is not valid JSON: ${(e as Error).message}`);
      }
      const records = Array.isArray(value) ? value : [value];
      return sendJson(reply, 200, await vulndb.importRecords(actor, records, source));
    }
    throw badRequest(
      `unsupported content type ${JSON.stringify(type)}: send application/zip or application/json`,
      'content-type',
    );
  });
}
