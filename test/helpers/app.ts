/**
 * HTTP-level test harness: builds the real Fastify app (`createApp`) on a fresh temporary data directory and
 * drives it with `inject()` (no sockets). Also small builders for the requests most tests need: pushing a blob
 * in one `POST ?digest=`, pushing a whole image (config + layers + OCI manifest), digests, and assertions on the
 * spec's error envelope.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { createApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { createServices, type Services } from '../../src/container.ts';

export type Response = LightMyRequestResponse;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const DOCKER_FOREIGN_LAYER = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
export const SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

/** The empty JSON blob `{}` artifacts without a config point at, and its well-known digest. */
export const EMPTY_JSON = Buffer.from('{}');
export const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

const RAW_PATH_HEADER = 'x-berth-test-raw-path';

export const API_VERSION_HEADER = 'docker-distribution-api-version';

/** `sha256:<hex>` of `bytes`. */
export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** `sha512:<hex>` of `bytes`. */
export function sha512(bytes: Uint8Array | string): string {
  return `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
}

/** `n` random (unique per call) bytes. */
export function randomBlob(n = 64): Buffer {
  return randomBytes(n);
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: { architecture: string; os: string };
}

/** The descriptor of `bytes` as `mediaType`. */
export function descriptorOf(bytes: Uint8Array, mediaType: string): Descriptor {
  return { mediaType, digest: sha256(bytes), size: bytes.length };
}

/** Serialises a manifest object to the exact bytes that will be pushed. */
export function manifestBytes(manifest: unknown): Buffer {
  return Buffer.from(JSON.stringify(manifest));
}

export interface ImageManifestOptions {
  config: Descriptor;
  layers: Descriptor[];
  mediaType?: string | null;
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** An OCI image manifest (or, with `mediaType`, a Docker schema2 one) as an object. */
export function imageManifest(o: ImageManifestOptions): Record<string, unknown> {
  return {
    schemaVersion: 2,
    ...(o.mediaType === null ? {} : { mediaType: o.mediaType ?? OCI_MANIFEST }),
    ...(o.artifactType !== undefined ? { artifactType: o.artifactType } : {}),
    config: o.config,
    layers: o.layers,
    ...(o.subject !== undefined ? { subject: o.subject } : {}),
    ...(o.annotations !== undefined ? { annotations: o.annotations } : {}),
  };
}

/** An OCI index (or, with `mediaType`, a Docker manifest list) as an object. */
export function indexManifest(
  manifests: Descriptor[],
  extra: {
    mediaType?: string;
    subject?: Descriptor;
    artifactType?: string;
    annotations?: Record<string, string>;
  } = {},
): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: extra.mediaType ?? OCI_INDEX,
    ...(extra.artifactType !== undefined ? { artifactType: extra.artifactType } : {}),
    manifests,
    ...(extra.subject !== undefined ? { subject: extra.subject } : {}),
    ...(extra.annotations !== undefined ? { annotations: extra.annotations } : {}),
  };
}

export interface PushedImage {
  /** The exact manifest bytes pushed. */
  readonly bytes: Buffer;
  readonly digest: string;
  readonly mediaType: string;
  readonly descriptor: Descriptor;
  readonly config: Descriptor;
  readonly layers: Descriptor[];
  readonly layerBytes: Buffer[];
}

export interface PushImageOptions {
  /** Number of random layers (default 1). */
  layers?: number;
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** Use the empty config `{}` (`application/vnd.oci.empty.v1+json`), as artifacts do. */
  emptyConfig?: boolean;
  /** Docker schema2 media types instead of OCI. */
  docker?: boolean;
}

export interface TestRegistry {
  readonly app: FastifyInstance;
  readonly services: Services;
  readonly config: Config;
  readonly dataDir: string;
  inject(options: InjectOptions): Promise<Response>;
  /** Sends `rawPath` exactly as given (no dot-segment resolution), as a client on a socket could. */
  injectRawPath(method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE', rawPath: string): Promise<Response>;
  /** Uploads `bytes` to `repo` in one `POST ?digest=` and checks the 201; returns the digest. */
  pushBlob(repo: string, bytes: Uint8Array, algorithm?: 'sha256' | 'sha512'): Promise<string>;
  /** PUTs manifest bytes (`Content-Type` = `mediaType` unless null) at `reference`; returns the raw response. */
  putManifest(
    repo: string,
    reference: string,
    bytes: Uint8Array,
    mediaType?: string | null,
  ): Promise<Response>;
  /** Uploads a config and layers, PUTs an OCI manifest at `tag` (or by digest when `tag` is null), checks the 201. */
  pushImage(repo: string, tag: string | null, options?: PushImageOptions): Promise<PushedImage>;
  /** Closes the app and the services; the data directory stays (see `reopen`). */
  close(): Promise<void>;
  /** Closes this instance and builds a NEW app and services on the same data directory (a restart). */
  reopen(): Promise<TestRegistry>;
  /** Closes and removes the data directory (also one handed in, e.g. by `reopen`). */
  dispose(): Promise<void>;
}

/**
 * Builds an app on a fresh temporary data directory (or `dataDir`), with config `overrides` given as dotted paths
 * (`{ 'registry.deletes': false, publicUrl: 'https://...' }`).
 */
export async function createTestRegistry(
  overrides: Record<string, unknown> = {},
  options: { dataDir?: string } = {},
): Promise<TestRegistry> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'berth-http-')));
  const config = loadConfig({ overrides: { data: dataDir, ...overrides }, env: {} });
  const services = await createServices(config);
  const app = createApp(config, services, { backgroundJobs: false, logger: false });
  // inject() resolves `.` and `..` segments (also `%2e%2e`) as WHATWG URLs do; a real client may send them raw.
  // A test-only header restores the raw path before the app's own handlers look at it.
  app.addHook('onRequest', (request, _reply, done) => {
    const raw = request.headers[RAW_PATH_HEADER];
    if (typeof raw === 'string') request.raw.url = raw;
    done();
  });
  await app.ready();
  let closed = false;

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await app.close();
    await services.close();
  };

  const registry: TestRegistry = {
    app,
    services,
    config,
    dataDir,
    inject: (o) => app.inject(o),
    injectRawPath: (method, rawPath) =>
      app.inject({ method, url: '/v2/placeholder', headers: { [RAW_PATH_HEADER]: rawPath } }),
    async pushBlob(repo, bytes, algorithm = 'sha256') {
      const digest = algorithm === 'sha256' ? sha256(bytes) : sha512(bytes);
      const res = await app.inject({
        method: 'POST',
        url: `/v2/${repo}/blobs/uploads/?digest=${digest}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: Buffer.from(bytes),
      });
      assert.equal(res.statusCode, 201, `pushBlob ${repo} ${digest}: ${res.statusCode} ${res.body}`);
      return digest;
    },
    putManifest(repo, reference, bytes, mediaType = OCI_MANIFEST) {
      return app.inject({
        method: 'PUT',
        url: `/v2/${repo}/manifests/${reference}`,
        headers: mediaType === null ? {} : { 'content-type': mediaType },
        payload: Buffer.from(bytes),
      });
    },
    async pushImage(repo, tag, o = {}) {
      const docker = o.docker === true;
      const configBytes = o.emptyConfig
        ? EMPTY_JSON
        : Buffer.from(
            JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') }),
          );
      const config = descriptorOf(
        configBytes,
        o.emptyConfig ? OCI_EMPTY : docker ? DOCKER_CONFIG : OCI_CONFIG,
      );
      await registry.pushBlob(repo, configBytes);
      const layerBytes: Buffer[] = [];
      const layers: Descriptor[] = [];
      for (let i = 0; i < (o.layers ?? 1); i++) {
        const bytes = randomBlob(128);
        await registry.pushBlob(repo, bytes);
        layerBytes.push(bytes);
        layers.push(descriptorOf(bytes, docker ? DOCKER_LAYER : OCI_LAYER));
      }
      const mediaType = docker ? DOCKER_MANIFEST : OCI_MANIFEST;
      const bytes = manifestBytes(
        imageManifest({
          mediaType,
          config,
          layers,
          ...(o.subject ? { subject: o.subject } : {}),
          ...(o.artifactType ? { artifactType: o.artifactType } : {}),
          ...(o.annotations ? { annotations: o.annotations } : {}),
        }),
      );
      const digest = sha256(bytes);
      const res = await registry.putManifest(repo, tag ?? digest, bytes, mediaType);
      assert.equal(res.statusCode, 201, `pushImage ${repo}:${tag}: ${res.statusCode} ${res.body}`);
      assert.equal(res.headers['docker-content-digest'], digest);
      return {
        bytes,
        digest,
        mediaType,
        descriptor: descriptorOf(bytes, mediaType),
        config,
        layers,
        layerBytes,
      };
    },
    close,
    async reopen() {
      await close();
      return createTestRegistry(overrides, { dataDir });
    },
    async dispose() {
      await close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return registry;
}

/** The parsed JSON body. */
export function json<T = Record<string, unknown>>(res: Response): T {
  return JSON.parse(res.body) as T;
}

/**
 * Asserts an error response: `status`, the JSON envelope `{"errors":[{code,message,...}]}` with `code` first,
 * a JSON content type and the API version header (which every response carries). HEAD responses have no body.
 */
export function assertError(res: Response, status: number, code: string): void {
  const where = `${res.raw.req.method ?? ''} ${res.raw.req.url ?? ''}`;
  assert.equal(
    res.statusCode,
    status,
    `${where}: expected ${status} ${code}, got ${res.statusCode} ${res.body}`,
  );
  assert.equal(res.headers[API_VERSION_HEADER], 'registry/2.0', `${where}: API version header`);
  if (res.raw.req.method === 'HEAD') {
    assert.equal(res.body, '');
    return;
  }
  assert.match(String(res.headers['content-type']), /^application\/json/, `${where}: content type`);
  const body = json<{ errors: { code: string; message: string }[] }>(res);
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `${where}: envelope ${res.body}`);
  assert.equal(body.errors[0]?.code, code, `${where}: ${res.body}`);
  assert.equal(typeof body.errors[0]?.message, 'string');
}

/** Asserts the API version header every response carries. */
export function assertApiVersion(res: Response): void {
  assert.equal(res.headers[API_VERSION_HEADER], 'registry/2.0');
}
