/**
 * Request plumbing of the admin API: the acting caller, JSON bodies (read from the raw stream with a size limit,
 * shaped by zod schemas), query parameters, JSON responses, and the mapping of AdminErrors to the envelope.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { AdminError } from '../../admin/errors.ts';
import type { Actor } from '../../admin/admin-service.ts';
import { parseDate, parseDuration } from '../../admin/validation.ts';
import { jsonNestingExceeds, MAX_JSON_DEPTH } from '../../util/json-depth.ts';
import { PaginationNumberInvalidError, PayloadTooLargeError, RegistryError } from '../../oci/errors.ts';
import { queryParam } from '../headers.ts';
import { hasBody, readBody } from '../plugins/raw-body.ts';

/** Largest JSON body accepted. */
export const BODY_LIMIT = 64 * 1024;

const actors = new WeakMap<FastifyRequest, Actor & { via: 'api'; authVia: string }>();

export function setActor(request: FastifyRequest, actor: Actor & { via: 'api'; authVia: string }): void {
  actors.set(request, actor);
}

/** The authenticated caller of an admin API request (set by the plugin's onRequest hook). */
export function actorOf(request: FastifyRequest): Actor & { via: 'api'; authVia: string } {
  const actor = actors.get(request);
  if (!actor) throw new RegistryError('UNAUTHORIZED', 'authentication required');
  return actor;
}

/** A 400 with the envelope (code UNSUPPORTED), naming the offending field when there is one. */
export function badRequest(message: string, field?: string): RegistryError {
  return new RegistryError('UNSUPPORTED', message, { status: 400, ...(field ? { detail: { field } } : {}) });
}

/** The HTTP form of an AdminError: not-found 404 NAME_UNKNOWN, conflict 409, invalid 400, forbidden 403 DENIED. */
export function toHttpError(e: AdminError): RegistryError {
  switch (e.kind) {
    case 'not-found':
      return new RegistryError('NAME_UNKNOWN', e.message);
    case 'conflict':
      return new RegistryError('UNSUPPORTED', e.message, { status: 409 });
    case 'invalid':
      return badRequest(e.message, e.field);
    case 'forbidden':
      return new RegistryError('DENIED', e.message);
  }
}

/**
 * The JSON body shaped by `schema`. No body is `{}` when `optional`, else 400; bad JSON, JSON nested deeper than
 * MAX_JSON_DEPTH, a non-object, or fields of the wrong type or unknown get 400; more than BODY_LIMIT bytes 413.
 */
export async function jsonBody<S extends z.ZodType>(
  request: FastifyRequest,
  schema: S,
  optional = false,
): Promise<z.output<S>> {
  let value: unknown = {};
  if (hasBody(request)) {
    const bytes = await readBody(
      request,
      BODY_LIMIT,
      () => new PayloadTooLargeError(`the request body exceeds ${BODY_LIMIT} bytes`),
    );
    if (jsonNestingExceeds(bytes)) {
      throw badRequest(`the body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`);
    }
    const text = bytes.toString('utf8').trim();
    if (text === '') {
      if (!optional) throw badRequest('a JSON object body is required');
    } else {
      try {
        value = JSON.parse(text);
      } catch (e) {
        throw badRequest(`the body is not valid JSON: ${(e as Error).message}`);
      }
    }
  } else if (!optional) {
    throw badRequest('a JSON object body is required');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest('the body must be a JSON object');
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const keys = issue?.code === 'unrecognized_keys' ? issue.keys : [];
    const field = [...(issue?.path ?? []), ...keys.slice(0, 1)].map(String).join('.');
    const message =
      issue?.code === 'unrecognized_keys'
        ? `unknown field ${keys.join(', ')}`
        : `${field || 'body'}: ${issue?.message ?? 'invalid'}`;
    throw badRequest(message, field || undefined);
  }
  return result.data;
}

/** `?limit=&after=` of list endpoints. */
export function pageQuery(request: FastifyRequest): { limit?: number; after?: string } {
  const out: { limit?: number; after?: string } = {};
  const limit = queryParam(request.query, 'limit');
  if (limit !== undefined && limit !== '') out.limit = parseLimit(limit);
  const after = queryParam(request.query, 'after');
  if (after !== undefined && after !== '') out.after = after;
  return out;
}

/** A positive whole number (huge values are clamped later); anything else is 400 PAGINATION_NUMBER_INVALID. */
export function parseLimit(value: string): number {
  if (!/^\d{1,12}$/.test(value) || Number(value) === 0) {
    throw new PaginationNumberInvalidError('limit must be a positive whole number', {
      detail: { limit: value.slice(0, 50) },
    });
  }
  return Number(value);
}

/** A boolean query parameter (`true`/`false`), or undefined. */
export function boolQuery(request: FastifyRequest, key: string): boolean | undefined {
  const v = queryParam(request.query, key);
  if (v === undefined || v === '') return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw badRequest(`${key} must be true or false`, key);
}

/** A non-empty string query parameter, or undefined. */
export function stringQuery(request: FastifyRequest, key: string): string | undefined {
  const v = queryParam(request.query, key);
  return v === undefined || v === '' ? undefined : v;
}

/**
 * A robot expiry from `expiresAt` (RFC 3339, or null for never) or `expiresIn` (a duration such as `30d`);
 * undefined when neither is given.
 */
export function expiryOf(body: { expiresAt?: string | null; expiresIn?: string }): Date | null | undefined {
  if (body.expiresAt !== undefined && body.expiresIn !== undefined)
    throw badRequest('give expiresAt or expiresIn, not both', 'expiresIn');
  if (body.expiresIn !== undefined) {
    const ms = parseDuration(body.expiresIn);
    if (ms === null || ms <= 0)
      throw badRequest('expiresIn: expected a duration such as 30d or 12h', 'expiresIn');
    return new Date(Date.now() + ms);
  }
  if (body.expiresAt === undefined || body.expiresAt === null) return body.expiresAt;
  const date = parseDate(body.expiresAt);
  if (date === null) throw badRequest('expiresAt: expected an RFC 3339 date-time', 'expiresAt');
  return date;
}

/** Sends `body` as JSON with `status`; never cached (responses may hold secrets shown once). */
export function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply
    .code(status)
    .header('Cache-Control', 'no-store')
    .type('application/json; charset=utf-8')
    .send(JSON.stringify(body));
}

/** 204 No Content. */
export function sendNoContent(reply: FastifyReply): FastifyReply {
  return reply.code(204).header('Cache-Control', 'no-store').send();
}
