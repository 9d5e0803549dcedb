/**
 * Checks admin API responses against `docs/api/openapi.yaml`: the path template, method and status must be
 * documented, and the body must match that status's schema (the subset of JSON Schema the document uses).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { Response } from './app.ts';

export const ADMIN_PREFIX = '/api/v1';

export type Schema = Record<string, unknown>;
export interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, unknown>>;
  components: {
    schemas: Record<string, Schema>;
    responses: Record<string, Schema>;
    parameters: Record<string, Schema>;
  };
}

/** The admin API's OpenAPI document, parsed. */
export const DOC = parseYaml(
  readFileSync(new URL('../../docs/api/openapi.yaml', import.meta.url), 'utf8'),
) as OpenApi;

/** The node a `$ref` points at (followed up to 10 times), or the node itself. */
export function deref(node: unknown): Schema {
  let n = node as Schema;
  for (let i = 0; i < 10 && typeof n?.$ref === 'string'; i++) {
    let target: unknown = DOC;
    for (const p of (n.$ref as string).replace(/^#\//, '').split('/'))
      target = (target as Record<string, unknown>)[p];
    assert.ok(target !== undefined, `unresolved $ref ${n.$ref as string}`);
    n = target as Schema;
  }
  return n;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** The ways `value` breaks `schema`. */
export function violations(schemaNode: unknown, value: unknown, at = '$'): string[] {
  const s = deref(schemaNode);
  const out: string[] = [];
  for (const sub of (s.allOf as unknown[] | undefined) ?? []) out.push(...violations(sub, value, at));
  if (s.type !== undefined) {
    const types = [s.type].flat() as string[];
    const t = typeOf(value);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number')))
      return [...out, `${at}: expected ${types.join('|')}, got ${t}`];
  }
  if (s.enum && !(s.enum as unknown[]).includes(value))
    out.push(`${at}: ${JSON.stringify(value)} not in enum`);
  if (typeof value === 'string') {
    if (s.format === 'date-time' && !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(value))
      out.push(`${at}: not a date-time`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern).test(value)) out.push(`${at}: pattern`);
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (s.properties as Record<string, unknown> | undefined) ?? {};
    for (const r of (s.required as string[] | undefined) ?? [])
      if (!(r in obj)) out.push(`${at}: missing ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (k in props) out.push(...violations(props[k], v, `${at}.${k}`));
      else if (s.additionalProperties === false) out.push(`${at}: unexpected property ${k}`);
      else if (typeof s.additionalProperties === 'object')
        out.push(...violations(s.additionalProperties, v, `${at}.${k}`));
    }
  }
  if (Array.isArray(value) && s.items)
    value.forEach((v, i) => out.push(...violations(s.items, v, `${at}[${i}]`)));
  return out;
}

function templateOf(path: string): string | undefined {
  const rel = path.slice(ADMIN_PREFIX.length);
  return Object.keys(DOC.paths).find((t) => new RegExp(`^${t.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(rel));
}

/** Asserts the response is documented for its path, method and status, and matches that schema. */
export function conforms(method: string, url: string, res: Response): void {
  const path = url.split('?')[0] as string;
  const template = templateOf(path);
  assert.ok(template, `${method} ${path} is not in the OpenAPI document`);
  const op = DOC.paths[template]?.[method.toLowerCase()] as Schema | undefined;
  assert.ok(op, `${method} ${template} is not in the OpenAPI document`);
  const documented = (op.responses as Record<string, unknown>)[String(res.statusCode)];
  assert.ok(documented, `${method} ${template}: status ${res.statusCode} is not documented (${res.body})`);
  const content = deref(documented).content as Record<string, { schema: unknown }> | undefined;
  if (res.statusCode === 204 || !content) {
    assert.equal(res.body, '', `${method} ${template}: ${res.statusCode} has no body`);
    return;
  }
  const problems = violations(content['application/json']?.schema, JSON.parse(res.body));
  assert.deepEqual(problems, [], `${method} ${template} ${res.statusCode}: ${res.body}`);
}
