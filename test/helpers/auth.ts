/**
 * Helpers for access-control tests over HTTP: Basic credentials, users/robots/namespaces created directly through
 * `services.auth.store`, tokens from `GET /auth/token`, JWT decoding, the Bearer challenge parser, and pushes that
 * carry an Authorization header (the `TestRegistry` builders send none).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { hashPassword, hashSecret } from '../../src/auth/passwords.ts';
import type { AccessEntry } from '../../src/auth/principal.ts';
import type { Role } from '../../src/metadata/auth-store.ts';
import {
  descriptorOf,
  imageManifest,
  json,
  manifestBytes,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  sha256,
  type Descriptor,
  type Response,
  type TestRegistry,
} from './app.ts';

export type Headers = Record<string, string>;

/** `Authorization: Basic base64(user:password)` */
export function basic(username: string, password: string): Headers {
  return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
}

export function bearer(token: string): Headers {
  return { authorization: `Bearer ${token}` };
}

/** Invalidates the authenticator's and authorizer's caches, as the admin API does after a change. */
export function invalidate(reg: TestRegistry): void {
  reg.services.auth.authenticator.invalidate();
  reg.services.auth.authorizer.invalidate();
}

/** Creates a local user with `password` (scrypt-hashed). */
export async function addUser(
  reg: TestRegistry,
  username: string,
  password: string,
  options: { admin?: boolean } = {},
): Promise<void> {
  await reg.services.auth.store.createUser({
    username,
    passwordHash: await hashPassword(password),
    isAdmin: options.admin === true,
  });
}

/** Creates a robot (`robot$...`) whose secret is stored as `hashSecret(secret)`. */
export async function addRobot(
  reg: TestRegistry,
  name: string,
  secret: string,
  options: { expiresAt?: Date | null } = {},
): Promise<void> {
  await reg.services.auth.store.createRobot({
    name,
    description: '',
    secretHash: hashSecret(secret),
    expiresAt: options.expiresAt ?? null,
    createdBy: null,
  });
}

export async function addNamespace(
  reg: TestRegistry,
  name: string,
  visibility: 'public' | 'private',
  members: [kind: 'user' | 'team' | 'robot', principal: string, role: Role][] = [],
): Promise<void> {
  await reg.services.auth.store.createNamespace({ name, visibility, description: '' });
  for (const [kind, principal, role] of members)
    await reg.services.auth.store.setMember(name, kind, principal, role);
}

export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
  scope?: string;
}

/** `GET /auth/token?service=berth&scope=...` with `headers` (Basic credentials, or none). */
export function tokenRequest(
  reg: TestRegistry,
  headers: Headers,
  scopes: readonly string[],
  extra: Record<string, string> = {},
): Promise<Response> {
  const q = new URLSearchParams({ service: reg.config.auth.token.service, ...extra });
  for (const s of scopes) q.append('scope', s);
  return reg.inject({ method: 'GET', url: `/auth/token?${q.toString()}`, headers });
}

/** A token for `scopes`, asserting the 200. */
export async function getToken(
  reg: TestRegistry,
  headers: Headers,
  scopes: readonly string[],
): Promise<string> {
  const res = await tokenRequest(reg, headers, scopes);
  assert.equal(res.statusCode, 200, `token for ${scopes.join(' ')}: ${res.statusCode} ${res.body}`);
  return json<TokenResponse>(res).token;
}

/** `POST /auth/token` with a form body. */
export function postToken(reg: TestRegistry, form: Record<string, string | string[]>): Promise<Response> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) for (const x of [v].flat()) body.append(k, x);
  return reg.inject({
    method: 'POST',
    url: '/auth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: body.toString(),
  });
}

export interface JwtParts {
  header: Record<string, unknown>;
  payload: Record<string, unknown> & { access?: AccessEntry[] };
}

/** Decodes (without verifying) a compact JWT. */
export function decodeJwt(token: string): JwtParts {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h as string, 'base64url').toString('utf8')) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p as string, 'base64url').toString('utf8')) as JwtParts['payload'],
  };
}

/** Parses `Bearer realm="...",service="...",scope="...",error="..."` into its parameters. */
export function parseChallenge(header: unknown): { scheme: string; params: Record<string, string> } {
  assert.equal(typeof header, 'string', `WWW-Authenticate header: ${String(header)}`);
  const h = header as string;
  const space = h.indexOf(' ');
  const params: Record<string, string> = {};
  for (const m of h.slice(space + 1).matchAll(/([a-z_]+)="([^"]*)"/g))
    params[m[1] as string] = m[2] as string;
  return { scheme: h.slice(0, space), params };
}

/** Uploads `bytes` to `repo` in one `POST ?digest=` with `headers`; asserts 201. */
export async function pushBlobAs(
  reg: TestRegistry,
  headers: Headers,
  repo: string,
  bytes: Buffer,
): Promise<string> {
  const digest = sha256(bytes);
  const res = await reg.inject({
    method: 'POST',
    url: `/v2/${repo}/blobs/uploads/?digest=${digest}`,
    headers: { ...headers, 'content-type': 'application/octet-stream' },
    payload: bytes,
  });
  assert.equal(res.statusCode, 201, `pushBlobAs ${repo}: ${res.statusCode} ${res.body}`);
  return digest;
}

export function putManifestAs(
  reg: TestRegistry,
  headers: Headers,
  repo: string,
  reference: string,
  bytes: Buffer,
): Promise<Response> {
  return reg.inject({
    method: 'PUT',
    url: `/v2/${repo}/manifests/${reference}`,
    headers: { ...headers, 'content-type': OCI_MANIFEST },
    payload: bytes,
  });
}

export interface SeededImage {
  readonly digest: string;
  readonly bytes: Buffer;
  readonly config: Descriptor;
  readonly layer: Descriptor;
  readonly layerBytes: Buffer;
}

/** A manifest over `config` and `layer` made unique by an annotation. */
export function uniqueManifest(
  config: Descriptor,
  layer: Descriptor,
  extra?: { subject?: Descriptor },
): Buffer {
  return manifestBytes(
    imageManifest({
      config,
      layers: [layer],
      annotations: { nonce: randomBytes(8).toString('hex') },
      ...(extra?.subject ? { subject: extra.subject } : {}),
    }),
  );
}

/** Pushes a config, a layer and a manifest (at `tag`, or by digest when null) with `headers`; asserts 201. */
export async function pushImageAs(
  reg: TestRegistry,
  headers: Headers,
  repo: string,
  tag: string | null,
  extra?: { subject?: Descriptor },
): Promise<SeededImage> {
  const configBytes = Buffer.from(JSON.stringify({ os: 'linux', nonce: randomBytes(8).toString('hex') }));
  const layerBytes = randomBytes(96);
  await pushBlobAs(reg, headers, repo, configBytes);
  await pushBlobAs(reg, headers, repo, layerBytes);
  const config = descriptorOf(configBytes, OCI_CONFIG);
  const layer = descriptorOf(layerBytes, OCI_LAYER);
  const bytes = uniqueManifest(config, layer, extra);
  const digest = sha256(bytes);
  const res = await putManifestAs(reg, headers, repo, tag ?? digest, bytes);
  assert.equal(res.statusCode, 201, `pushImageAs ${repo}:${tag}: ${res.statusCode} ${res.body}`);
  return { digest, bytes, config, layer, layerBytes };
}
