/**
 * Fires well over a thousand malformed requests, generated deterministically from a seeded PRNG, at every endpoint
 * family of a real Berth process: bad repository names, tags, digests and upload ids (path traversal included),
 * bad `Range`/`Content-Range`/`Content-Length`, bad `?digest=`/`?mount=`/`?n=`, broken and oversized manifests,
 * unusual HTTP methods and raw protocol junk.
 *
 * Every answer must be < 500; every 4xx on `/v2/...` (but HEAD, which has no body) must carry the spec's error
 * envelope with a spec code. Afterwards the registry must still serve a push + pull round-trip, the process must
 * be alive, and nothing may have been written outside the data directory (a canary directory next to it stays
 * empty; files named after the traversal marker exist nowhere).
 *
 * Reproduce another run with `BERTH_FUZZ_SEED=<n>`; the seed is part of the suite name.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  imageManifest,
  mulberry32,
  OCI_CONFIG,
  OCI_MANIFEST,
  pushBlob,
  pushBlobChunked,
  pushManifest,
  randomBytesFrom,
  rawRequest,
  request,
  sha256,
  slowBody,
  startUpload,
  type HttpResponse,
} from '../helpers/http-client.ts';
import { PROJECT_ROOT, startBerth, type RunningBerth } from '../helpers/server.ts';

const SEED = Number(process.env.BERTH_FUZZ_SEED ?? 0x5eedb3a7) >>> 0;
const CONCURRENCY = 8;
/** A name no legitimate file ever has: traversal payloads aim files with this name outside the data dir. */
const MARKER = `berth-fuzz-pwned-${SEED.toString(16)}`;

const SPEC_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  'RANGE_INVALID',
  'PAGINATION_NUMBER_INVALID',
]);

// ---------------------------------------------------------------------------------------------------------
// Cases

interface FuzzCase {
  readonly family: string;
  readonly method: string;
  /** Path and query, sent verbatim. */
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** A body, or a factory for a streamed one (chunked transfer encoding). */
  readonly body?: Buffer | (() => AsyncIterable<Uint8Array>);
  /** Send these bytes over a plain socket instead (requests Node's client refuses to produce). */
  readonly raw?: Buffer;
  /** Node may close the connection without answering (CONNECT, a body cut short by the client). */
  readonly mayDrop?: boolean;
  /**
   * Answered by Node's HTTP server itself before any application code runs (missing `Host`, unknown `Expect`):
   * only the status is checked, since the application never sees the request.
   */
  readonly nodeLevel?: boolean;
}

interface Fixtures {
  readonly repo: string;
  readonly otherRepo: string;
  readonly blob: Buffer;
  readonly blobDigest: string;
  readonly configDigest: string;
  readonly configSize: number;
  readonly manifestDigest: string;
  readonly otherBlobDigest: string;
  /** Upload sessions open in `repo` (their Location paths' ids). */
  readonly sessions: readonly string[];
  /** Sessions open in `otherRepo`, to be addressed through `repo` (must be unknown there). */
  readonly otherSessions: readonly string[];
}

class Gen {
  private readonly rand: () => number;
  constructor(seed: number) {
    this.rand = mulberry32(seed);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.rand() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rand() * items.length)] as T;
  }
  hex(n: number): string {
    let s = '';
    while (s.length < n) s += Math.floor(this.rand() * 16).toString(16);
    return s;
  }
  bytes(n: number): Buffer {
    return randomBytesFrom(this.rand, n);
  }
  uuid(): string {
    const h = this.hex(32);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.rand() * (i + 1));
      [items[i], items[j]] = [items[j] as T, items[i] as T];
    }
    return items;
  }
}

/** Percent-encodes what Node's client refuses in a path (controls, space, non-ASCII); `%` stays as it is. */
function enc(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    out += c > 0x20 && c < 0x7f ? ch : encodeURIComponent(ch);
  }
  return out;
}

function buildCases(fx: Fixtures, seed: number): FuzzCase[] {
  const g = new Gen(seed);
  const hex64 = g.hex(64);
  const unknownDigest = (): string => `sha256:${g.hex(64)}`;
  const R = fx.repo;

  const BAD_NAMES = [
    'UPPER',
    'Upper/case',
    'fuzz/Valid',
    '..',
    '.',
    'a/..',
    '../a',
    'a/../b',
    'a/./b',
    '%2e%2e',
    '%2E%2E',
    'a/%2e%2e/b',
    '%2e%2e%2f%2e%2e%2fetc',
    '%2F..%2F',
    'a%2F..%2Fb',
    `..%2F..%2F..%2Fcanary%2F${MARKER}`,
    `%2e%2e/%2e%2e/%2e%2e/canary/${MARKER}`,
    `..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2ftmp%2f${MARKER}`,
    '/etc/passwd',
    '//etc/passwd',
    '%2Fetc%2Fpasswd',
    '%00',
    'a%00b',
    'fuzz/valid%00',
    'x'.repeat(256),
    'x'.repeat(5000),
    `${'a/'.repeat(130)}a`,
    `${'a'.repeat(128)}/${'b'.repeat(128)}`,
    'caf%C3%A9',
    'café',
    '%E2%80%AE',
    '%F0%9F%90%B3',
    '🐳',
    '-a',
    'a-',
    '_a',
    'a_',
    'a___b',
    'a..b',
    'a//b',
    'a/',
    '%20',
    'a%20b',
    '%',
    '%zz',
    '%c0%ae%c0%ae',
    '%ff%fe',
    '~root',
    '$(id)',
    '`id`',
    'a;b',
    'a%0d%0aSet-Cookie:x',
    '_catalog',
    '*',
    '\\..\\..\\windows',
    'a%5C..%5Cb',
  ];
  const VALID_NAMES = [R, 'fuzz/absent', 'a', 'a/b/c/d/e/f'];
  const BAD_TAGS = [
    '',
    '-x',
    '.x',
    'x'.repeat(129),
    'x'.repeat(10_240),
    '%20',
    'a%20b',
    '..',
    '%2e%2e',
    `..%2F..%2F..%2Fcanary%2F${MARKER}`,
    'caf%C3%A9',
    'café',
    '%00',
    'a%00',
    '*',
    'latest%0d%0a',
    'a+b',
    '%2Fetc%2Fpasswd',
    '%',
    '%zz',
    'a@b',
    'a!b',
  ];
  const BAD_DIGESTS = [
    'sha256:short',
    'md5:d41d8cd98f00b204e9800998ecf8427e',
    'sha256:../../x',
    'sha256:..%2F..%2Fx',
    `sha256:%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fcanary%2f${MARKER}`,
    `sha256:..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2Ftmp%2F${MARKER}`,
    `sha256:${hex64.toUpperCase()}`,
    `sha256:${hex64.slice(0, 10).toUpperCase()}${hex64.slice(10)}`,
    '',
    'sha256:',
    ':',
    'sha256',
    `sha256:${'a'.repeat(10_240)}`,
    'x'.repeat(10_240),
    `sha512:${hex64}`,
    `sha256:${hex64.slice(1)}`,
    `sha256:${hex64}0`,
    `SHA256:${hex64}`,
    `sha256:${hex64}%00`,
    `sha256:${hex64.slice(0, 63)}%00`,
    `sha256:${hex64}%20`,
    `sha384:${hex64}${hex64.slice(0, 32)}`,
    `sha256:g${hex64.slice(1)}`,
    '..%2F..%2F..%2Fetc%2Fpasswd',
    `blake3:${hex64}`,
    `sha256::${hex64}`,
    `sha256:${hex64}:${hex64}`,
    `sha256:${hex64.slice(0, 32)}..${hex64.slice(34)}`,
    `sha256:+${hex64.slice(1)}`,
    `sha256:%${hex64.slice(1)}`,
    `sha256:${'é'.repeat(64)}`,
  ];
  const BAD_UPLOAD_IDS = [
    '..',
    '.',
    '%2e%2e',
    '..%2F..%2Fberth.db',
    '..%2F..%2F..%2Fberth.db',
    `..%2F..%2F..%2F..%2Fcanary%2F${MARKER}`,
    '%2e%2e%2f%2e%2e%2f_uploads',
    'x'.repeat(10_000),
    '%00',
    'not-a-uuid',
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    'café',
    '%ff',
    '%',
    '_uploads',
    '_tmp',
  ];
  const CONTENT_TYPES: (string | undefined)[] = [
    undefined,
    '',
    'application/json',
    'text/plain',
    'application/octet-stream',
    OCI_MANIFEST,
    `${OCI_MANIFEST}; charset=utf-8`,
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.v1+prettyjws',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    ';;;',
    'a/b/c',
    '*/*',
    `application/${'x'.repeat(5000)}`,
    'APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON',
    '\t',
  ];
  const JUNK_HEADERS: Record<string, string>[] = [
    {},
    { Accept: 'x' },
    { Accept: ',,,;;;' },
    { Accept: '*/*;q=abc' },
    { Accept: 'a'.repeat(8000) },
    { 'If-None-Match': '"' },
    { 'If-None-Match': '*' },
    { 'If-None-Match': `W/"sha256:${hex64}"` },
    { Authorization: 'Bearer' },
    { Authorization: 'Basic !!!' },
    { Authorization: `Bearer ${'x'.repeat(4000)}` },
    { 'X-Forwarded-Host': 'évil' },
    { 'X-Forwarded-Host': 'a b' },
    { 'X-Forwarded-Host': 'x'.repeat(4000) },
    { 'X-Forwarded-Proto': 'javascript' },
    { 'X-Forwarded-Proto': '' },
    { Host: 'évil:99999' },
    { Host: '' },
    { 'Content-Type': ';' },
    { Range: 'bytes=0-0' },
    { 'Content-Range': 'junk' },
  ];
  const RANGES = [
    '',
    'bytes',
    'bytes=',
    'bytes=abc',
    'bytes=5-1',
    'bytes=-0',
    'bytes=0-',
    'bytes=-',
    'bytes=99999999999999999999-',
    'bytes=0-99999999999999999999',
    'bytes=-99999999999999999999',
    'bytes=0-1,2-3',
    'bytes=0-1,,',
    'bytes=,',
    'items=0-1',
    'bytes=1e3-',
    'bytes= 0 - 1',
    'bytes=0x10-',
    'bytes=-1-2',
    'bytes=1-2-3',
    'x'.repeat(10_000),
    `bytes=${'0-0,'.repeat(2000)}0-0`,
    'bytes=9007199254740993-',
    'bytes=2000-',
    'bytes=1999-',
    'bytes=1999-1999',
    'bytes=-2001',
    'BYTES=0-1',
    'bytes=+1-2',
    'bytes=0-1\t',
  ];
  const CONTENT_RANGES = [
    '',
    'bytes',
    '0-',
    '-1',
    '5-1',
    '0-99999999999999999',
    '99999999999999999-99999999999999999',
    'abc',
    '1-2-3',
    '0-0/abc',
    'bytes */100',
    'bytes=0-10',
    'bytes 0-10/11',
    '0-10',
    '1-10',
    '0-0',
    '00000000000000000-1',
    '0x0-0x10',
    '0 - 10',
    '-',
    '0--1',
    'x'.repeat(10_000),
    '1e3-2e3',
    '9007199254740993-9007199254740995',
  ];
  const PAGE_N = [
    '-1',
    'abc',
    '1e9',
    '99999999999999999999',
    '',
    '0x10',
    '%201',
    '1.5',
    '%2B1',
    'NaN',
    'Infinity',
    '1000000000',
    '999999999',
    '0',
    '%00',
    '1%00',
    'n'.repeat(5000),
    '%EF%BC%91',
    '1&n=2',
    '-0',
  ];
  const LASTS = [
    '',
    '..%2F..%2F',
    '%00',
    'x'.repeat(10_000),
    'caf%C3%A9',
    '%FF',
    '%',
    '%%%',
    `${'~'.repeat(300)}`,
  ];
  const DIGEST_PARAMS = [
    'digest=',
    'digest',
    'digest=sha256:short',
    'digest=md5:d41d8cd98f00b204e9800998ecf8427e',
    'digest=..%2F..%2Fx',
    `digest=sha256:${hex64.toUpperCase()}`,
    `digest=sha256:${hex64}&digest=sha256:${g.hex(64)}`,
    `digest=${'x'.repeat(10_000)}`,
    'digest=%00',
    `digest=sha256%3A${hex64}`,
    `digest[]=sha256:${hex64}`,
    `digest=sha256:..%2F..%2F..%2F..%2Fcanary%2F${MARKER}`,
    `DIGEST=sha256:${hex64}`,
  ];
  const FROMS = [
    '',
    'UPPER',
    '..%2F..%2Fetc',
    '%00',
    'x'.repeat(300),
    fx.otherRepo,
    R,
    'fuzz/absent',
    '%2e%2e',
  ];

  const body = (max: number): Buffer => g.bytes(g.int(0, max));
  const v2 = (name: string, tail: string): string => `/v2/${enc(name)}/${tail}`;

  /** Tails of every endpoint family, for a name already chosen. */
  const tails = (): string[] => [
    'tags/list',
    `tags/list?n=${g.int(0, 5)}`,
    'manifests/latest',
    `manifests/${fx.manifestDigest}`,
    `blobs/${fx.blobDigest}`,
    'blobs/uploads/',
    `blobs/uploads/?digest=${fx.blobDigest}`,
    `blobs/uploads/?mount=${fx.otherBlobDigest}&from=${fx.otherRepo}`,
    `blobs/uploads/${g.pick(fx.sessions)}`,
    `blobs/uploads/${g.uuid()}`,
    `referrers/${fx.manifestDigest}`,
  ];
  const METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'];
  const withBody = (m: string): boolean => m === 'PUT' || m === 'PATCH' || m === 'POST';

  const families: [string, number, (i: number) => FuzzCase][] = [];

  // Malformed repository names on every endpoint family.
  families.push([
    'name',
    230,
    (i) => {
      const name = BAD_NAMES[i % BAD_NAMES.length] as string;
      const method = g.pick(METHODS);
      return {
        family: 'name',
        method,
        path: v2(name, g.pick(tails())),
        ...(withBody(method) && g.chance(0.7) ? { body: body(256) } : {}),
        headers: g.pick(JUNK_HEADERS),
      };
    },
  ]);

  // Tags and digests as manifest references.
  families.push([
    'manifest-ref',
    140,
    (i) => {
      const refs = [...BAD_TAGS, ...BAD_DIGESTS];
      const ref = refs[i % refs.length] as string;
      const method = g.pick(['GET', 'HEAD', 'DELETE', 'PUT', 'GET', 'HEAD']);
      const name = g.chance(0.85) ? R : g.pick(VALID_NAMES);
      return {
        family: 'manifest-ref',
        method,
        path: v2(name, `manifests/${enc(ref)}`),
        headers: { ...g.pick(JUNK_HEADERS), ...(method === 'PUT' ? { 'Content-Type': OCI_MANIFEST } : {}) },
        ...(method === 'PUT'
          ? { body: imageManifest({ digest: fx.configDigest, size: fx.configSize }, []) }
          : {}),
      };
    },
  ]);

  // Digests on blob endpoints (never DELETE the fixture blob: later Range cases need it).
  families.push([
    'blob-digest',
    110,
    (i) => {
      const digest = i % 5 === 4 ? unknownDigest() : (BAD_DIGESTS[i % BAD_DIGESTS.length] as string);
      return {
        family: 'blob-digest',
        method: g.pick(['GET', 'HEAD', 'DELETE', 'GET']),
        path: v2(g.chance(0.9) ? R : g.pick([...VALID_NAMES, ...BAD_NAMES]), `blobs/${enc(digest)}`),
        headers: g.chance(0.3) ? { Range: g.pick(RANGES) } : g.pick(JUNK_HEADERS),
      };
    },
  ]);

  // Range headers on an existing blob (2000 bytes).
  families.push([
    'blob-range',
    80,
    (i) => ({
      family: 'blob-range',
      method: g.pick(['GET', 'GET', 'HEAD']),
      path: v2(R, `blobs/${fx.blobDigest}`),
      headers: { Range: RANGES[i % RANGES.length] as string },
    }),
  ]);

  // Upload start with junk ?digest= / ?mount= / bodies.
  families.push([
    'upload-start',
    110,
    (i) => {
      let query: string;
      const k = i % 4;
      if (k === 0 || k === 1) query = DIGEST_PARAMS[Math.floor(i / 4) % DIGEST_PARAMS.length] as string;
      else if (k === 2) {
        const mount = g.pick([...BAD_DIGESTS, fx.otherBlobDigest, fx.blobDigest, unknownDigest()]);
        query = `mount=${enc(mount)}${g.chance(0.7) ? `&from=${enc(g.pick(FROMS))}` : ''}`;
      } else {
        query = g.pick([
          'mount=',
          'mount',
          'from=a',
          `mount=${fx.otherBlobDigest}&mount=${g.hex(4)}`,
          `mount=${fx.otherBlobDigest}&from=${fx.otherRepo}&digest=sha256:${hex64}`,
          `mount=sha256:short&digest=sha256:short`,
          '',
          '&&&',
          '=',
        ]);
      }
      const hasBody = g.chance(0.6);
      return {
        family: 'upload-start',
        method: 'POST',
        path: `${v2(g.chance(0.9) ? R : g.pick(BAD_NAMES), 'blobs/uploads/')}?${query}`,
        headers: {
          ...g.pick(JUNK_HEADERS),
          ...(g.chance(0.5) ? { 'Content-Type': g.pick(CONTENT_TYPES) ?? 'application/octet-stream' } : {}),
        },
        ...(hasBody ? { body: body(2048) } : {}),
      };
    },
  ]);

  // Unknown, foreign and malformed upload ids (path traversal included).
  families.push([
    'upload-id',
    110,
    (i) => {
      const k = i % 4;
      const id =
        k === 0
          ? g.uuid()
          : k === 1
            ? g.pick([
                g.uuid().toUpperCase(),
                g.pick(fx.otherSessions),
                `${g.uuid()}%00`,
                `${g.uuid()}x`,
                ` ${g.uuid()}`,
              ])
            : (BAD_UPLOAD_IDS[i % BAD_UPLOAD_IDS.length] as string);
      const method = g.pick(['GET', 'PATCH', 'PUT', 'DELETE', 'PATCH', 'PUT']);
      const digestQ =
        method === 'PUT' && g.chance(0.8)
          ? `?digest=${g.chance(0.5) ? unknownDigest() : 'sha256:short'}`
          : '';
      return {
        family: 'upload-id',
        method,
        path: `${v2(R, `blobs/uploads/${enc(id)}`)}${digestQ}`,
        headers: g.chance(0.4) ? { 'Content-Range': g.pick(CONTENT_RANGES) } : ({} as Record<string, string>),
        ...(withBody(method) && g.chance(0.7) ? { body: body(512) } : {}),
      };
    },
  ]);

  // Malformed Content-Range on live sessions.
  families.push([
    'content-range',
    90,
    (i) => ({
      family: 'content-range',
      method: 'PATCH',
      path: v2(R, `blobs/uploads/${g.pick(fx.sessions)}`),
      headers: { 'Content-Range': CONTENT_RANGES[i % CONTENT_RANGES.length] as string },
      ...(g.chance(0.8) ? { body: body(64) } : {}),
    }),
  ]);

  // Completing live sessions with missing, malformed or wrong digests.
  families.push([
    'upload-complete',
    60,
    (i) => {
      const session = g.pick(fx.sessions);
      const q = i % 3 === 0 ? '' : `?${DIGEST_PARAMS[i % DIGEST_PARAMS.length] as string}`;
      return {
        family: 'upload-complete',
        method: 'PUT',
        path: `${v2(R, `blobs/uploads/${session}`)}${i % 5 === 1 ? `?digest=${unknownDigest()}` : q}`,
        ...(g.chance(0.5) ? { body: body(128) } : {}),
        ...(g.chance(0.3) ? { headers: { 'Content-Range': g.pick(CONTENT_RANGES) } } : {}),
      };
    },
  ]);

  // Manifest bodies: random bytes, broken JSON, deep nesting, near-valid manifests with one thing wrong.
  const base = (): Record<string, unknown> => ({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: fx.configDigest, size: fx.configSize },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: fx.blobDigest, size: fx.blob.length },
    ],
  });
  const decodedBadDigest = (): string => {
    const d = g.pick(BAD_DIGESTS);
    try {
      return decodeURIComponent(d);
    } catch {
      return d;
    }
  };
  const MUTATIONS: ((m: Record<string, unknown>) => void)[] = [
    (m) => (m.schemaVersion = 1),
    (m) => (m.schemaVersion = '2'),
    (m) => (m.schemaVersion = 2.5),
    (m) => (m.schemaVersion = null),
    (m) => delete m.schemaVersion,
    (m) => (m.mediaType = g.pick(CONTENT_TYPES) ?? 123),
    (m) => (m.mediaType = null),
    (m) => delete m.config,
    (m) => (m.config = null),
    (m) => (m.config = []),
    (m) => (m.config = 'sha256:abc'),
    (m) => (m.config = { mediaType: OCI_CONFIG, digest: decodedBadDigest(), size: 2 }),
    (m) => (m.config = { mediaType: OCI_CONFIG, digest: fx.configDigest, size: -1 }),
    (m) => (m.config = { mediaType: OCI_CONFIG, digest: fx.configDigest, size: 1.5 }),
    (m) => (m.config = { mediaType: OCI_CONFIG, digest: fx.configDigest, size: '10' }),
    (m) => (m.config = { mediaType: OCI_CONFIG, digest: fx.configDigest, size: 2 ** 60 }),
    (m) => (m.config = { mediaType: '', digest: fx.configDigest, size: 2 }),
    (m) => (m.config = { mediaType: 'a/b/c', digest: fx.configDigest, size: 2 }),
    (m) => (m.config = { mediaType: OCI_CONFIG, digest: unknownDigest(), size: 2 }),
    (m) => delete m.layers,
    (m) => (m.layers = {}),
    (m) => (m.layers = 'x'),
    (m) => (m.layers = [null]),
    (m) => (m.layers = [1, 2, 3]),
    (m) => (m.layers = [{ mediaType: 'x/y', digest: decodedBadDigest(), size: 1 }]),
    (m) =>
      (m.layers = Array.from({ length: 500 }, () => ({
        mediaType: 'x/y',
        digest: unknownDigest(),
        size: 1,
      }))),
    (m) =>
      (m.layers = [{ mediaType: 'x/y', digest: unknownDigest(), size: 1, urls: ['file:///etc/passwd'] }]),
    (m) => (m.layers = [{ mediaType: 'x/y', digest: unknownDigest(), size: 1, urls: 'http://x' }]),
    (m) =>
      (m.layers = [{ mediaType: 'x/y', digest: unknownDigest(), size: 1, urls: [`http://x/${MARKER}`] }]),
    (m) => (m.annotations = 'x'),
    (m) => (m.annotations = { a: 1 }),
    (m) => (m.annotations = { a: null }),
    (m) => (m.annotations = ['a']),
    (m) => (m.annotations = { ['k'.repeat(1000)]: 'v'.repeat(100_000) }),
    (m) => (m.subject = { mediaType: OCI_MANIFEST, digest: decodedBadDigest(), size: 1 }),
    (m) => (m.subject = 'x'),
    (m) => (m.subject = { mediaType: OCI_MANIFEST, digest: unknownDigest(), size: 1 }),
    (m) => (m.artifactType = ''),
    (m) => (m.artifactType = 'x'.repeat(300)),
    (m) => (m.artifactType = 42),
    (m) => (m.manifests = []),
    (m) => (m.manifests = [{ mediaType: OCI_MANIFEST, digest: unknownDigest(), size: 1 }]),
    (m) => {
      m.mediaType = 'application/vnd.oci.image.index.v1+json';
      m.manifests = [{ mediaType: OCI_MANIFEST, digest: decodedBadDigest(), size: 1 }];
    },
    (m) => {
      m.mediaType = 'application/vnd.docker.distribution.manifest.list.v2+json';
      m.manifests = [{ mediaType: 'text/plain', digest: unknownDigest(), size: 1 }];
    },
    (m) => {
      m.mediaType = 'application/vnd.docker.distribution.manifest.v2+json';
      m.layers = [];
    },
  ];
  const JSON_JUNK = [
    '{',
    '{"a":',
    '}',
    'null',
    'true',
    '1',
    '"str"',
    '[]',
    '{}',
    '\ufeff{"schemaVersion":2}',
    '{"schemaVersion":2}',
    '{"schemaVersion":1e400}',
    '{"schemaVersion":2,"schemaVersion":1}',
    '{"__proto__":{"schemaVersion":2,"polluted":true},"constructor":{"prototype":{"x":1}}}',
    '{"schemaVersion":2,"layers":[],"config":{"mediaType":"a/b","digest":"sha256:\\u0000","size":1}}',
    '{"schemaVersion":2,"mediaType":"\\ud800"}',
    `{"schemaVersion":2,"x":"${'\\u0000'.repeat(1000)}"}`,
    '\u0000',
    ' ',
  ];
  families.push([
    'manifest-body',
    170,
    (i) => {
      let payload: Buffer;
      const k = i % 8;
      if (k === 0) payload = body(4096);
      else if (k === 1) payload = Buffer.from(g.pick(JSON_JUNK));
      else if (k === 2) {
        const depth = g.int(1000, 200_000);
        payload = Buffer.from(
          g.chance(0.5)
            ? `${'['.repeat(depth)}${']'.repeat(depth)}`
            : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
        );
      } else if (k === 3) {
        payload = Buffer.concat([
          Buffer.from('{"schemaVersion":2,"mediaType":"'),
          body(64),
          Buffer.from('"}'),
        ]);
      } else {
        const m = base();
        const mutate = MUTATIONS[Math.floor(i / 8 + i) % MUTATIONS.length] as (
          m: Record<string, unknown>,
        ) => void;
        mutate(m);
        if (g.chance(0.2)) (g.pick(MUTATIONS) as (m: Record<string, unknown>) => void)(m);
        payload = Buffer.from(JSON.stringify(m));
      }
      const refKind = g.int(0, 5);
      const ref =
        refKind === 0
          ? `fz${i}`
          : refKind === 1
            ? sha256(payload)
            : refKind === 2
              ? unknownDigest()
              : refKind === 3
                ? enc(g.pick(BAD_TAGS))
                : refKind === 4
                  ? enc(g.pick(BAD_DIGESTS))
                  : `fz${i}${g.chance(0.5) ? `?tag=${enc(g.pick(BAD_TAGS))}` : `?tag=ok${i}&tag=`}`;
      const contentType = g.pick(CONTENT_TYPES);
      return {
        family: 'manifest-body',
        method: 'PUT',
        path: v2(g.chance(0.95) ? R : g.pick(BAD_NAMES), `manifests/${ref}`),
        headers: contentType === undefined ? ({} as Record<string, string>) : { 'Content-Type': contentType },
        body: payload,
      };
    },
  ]);

  // Pagination junk on the catalog and tag lists.
  families.push([
    'pagination',
    90,
    (i) => {
      const n = PAGE_N[i % PAGE_N.length] as string;
      const q = g.chance(0.3)
        ? `n=${n}&last=${g.pick(LASTS)}`
        : g.chance(0.2)
          ? `last=${g.pick(LASTS)}`
          : `n=${n}`;
      const target = g.pick([
        '/v2/_catalog',
        v2(R, 'tags/list'),
        v2('fuzz/absent', 'tags/list'),
        '/v1/search',
      ]);
      return {
        family: 'pagination',
        method: g.pick(['GET', 'GET', 'GET', 'HEAD']),
        path: `${target}?${q}${target === '/v1/search' && g.chance(0.5) ? `&page=${n}&q=${g.pick(LASTS)}` : ''}`,
      };
    },
  ]);

  // Referrers with bad subjects and artifactType filters.
  families.push([
    'referrers',
    50,
    (i) => {
      const subject = i % 3 === 0 ? fx.manifestDigest : (BAD_DIGESTS[i % BAD_DIGESTS.length] as string);
      const filter = g.pick([
        '',
        '?artifactType=',
        '?artifactType=%00',
        `?artifactType=${'x'.repeat(5000)}`,
        '?artifactType=a/b&artifactType=c/d',
      ]);
      return {
        family: 'referrers',
        method: g.pick(['GET', 'GET', 'HEAD', 'DELETE', 'PUT']),
        path: `${v2(g.chance(0.9) ? R : g.pick(BAD_NAMES), `referrers/${enc(subject)}`)}${filter}`,
      };
    },
  ]);

  // Unusual HTTP methods on every endpoint (Node's client sends any token; its server knows the WebDAV ones).
  const ODD_METHODS = [
    'OPTIONS',
    'TRACE',
    'PROPFIND',
    'PROPPATCH',
    'MKCOL',
    'COPY',
    'MOVE',
    'LOCK',
    'UNLOCK',
    'SEARCH',
    'PURGE',
    'REPORT',
    'MKACTIVITY',
    'CHECKOUT',
    'MERGE',
    'M-SEARCH',
    'NOTIFY',
    'SUBSCRIBE',
    'UNSUBSCRIBE',
    'LINK',
    'UNLINK',
    'QUERY',
    'ACL',
    'BIND',
    'REBIND',
    'UNBIND',
    'MKCALENDAR',
    'SOURCE',
  ];
  families.push([
    'method',
    90,
    (i) => {
      const method = ODD_METHODS[i % ODD_METHODS.length] as string;
      const p = g.pick([
        '/v2/',
        '/v2',
        '/v2/_catalog',
        v2(R, g.pick(tails())),
        v2(g.pick(BAD_NAMES), g.pick(tails())),
        '/v1/search',
        '/',
      ]);
      return {
        family: 'method',
        method,
        path: p,
        ...(g.chance(0.3) ? { body: body(128) } : {}),
      };
    },
  ]);

  // Raw protocol junk: Content-Length values Node's client would not send, framing errors, raw bytes in paths.
  const session0 = fx.sessions[0] as string;
  const rawTargets = [
    `POST /v2/${R}/blobs/uploads/?digest=sha256:${hex64}`,
    `PATCH /v2/${R}/blobs/uploads/${session0}`,
    `PUT /v2/${R}/manifests/rawtag`,
    `PUT /v2/${R}/blobs/uploads/${session0}?digest=sha256:${hex64}`,
  ];
  const CL_JUNK = [
    'abc',
    '-1',
    '1e3',
    '0x10',
    '5, 5',
    '5,6',
    '99999999999999999999',
    '',
    ' ',
    '+5',
    '5.0',
    '１',
    '5 5',
    '-0',
  ];
  const rawCases: FuzzCase[] = [];
  const rawCase = (label: string, text: string | Buffer, extra: Partial<FuzzCase> = {}): void => {
    const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
    const line = bytes.subarray(0, Math.max(0, bytes.indexOf('\r\n'))).toString('latin1');
    const [method = '', target = ''] = line.split(' ');
    rawCases.push({ family: `raw:${label}`, method, path: target, raw: bytes, ...extra });
  };
  for (const [j, cl] of CL_JUNK.entries()) {
    rawCase(
      'content-length',
      `${rawTargets[j % rawTargets.length]} HTTP/1.1\r\nHost: x\r\nContent-Length: ${cl}\r\n\r\nhello`,
    );
  }
  for (const t of rawTargets) {
    rawCase(
      'two-content-lengths',
      `${t} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    );
    rawCase(
      'cl-and-te',
      `${t} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    rawCase(
      'bad-chunk',
      `${t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
    );
    rawCase('te-gzip', `${t} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello`);
    rawCase('body-too-long', `${t} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhello`);
    rawCase('http10-no-length', `${t} HTTP/1.0\r\nHost: x\r\n\r\nhello`, { mayDrop: true });
    rawCase(
      'content-range-raw',
      `${t} HTTP/1.1\r\nHost: x\r\nContent-Range: \x01\x7f\r\nContent-Length: 5\r\n\r\nhello`,
    );
  }
  for (const name of ['café', '🐳/x', 'a\u0000b', 'a b', 'a\tb', 'a\u007fb', 'a\u00ffb']) {
    rawCase('raw-path-bytes', `GET /v2/${name}/tags/list HTTP/1.1\r\nHost: x\r\n\r\n`);
  }
  for (const m of ['FOO', 'get', 'G ET', 'GET\u0000', 'BREW', 'PRI']) {
    rawCase('unknown-method', `${m} /v2/ HTTP/1.1\r\nHost: x\r\n\r\n`, { mayDrop: m === 'PRI' });
  }
  rawCase('connect', `CONNECT /v2/ HTTP/1.1\r\nHost: x\r\n\r\n`, { mayDrop: true });
  rawCase('connect-authority', `CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n`, {
    mayDrop: true,
  });
  rawCase('huge-header', `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(20_000)}\r\n\r\n`);
  rawCase('huge-url', `GET /v2/${'a'.repeat(100_000)}/tags/list HTTP/1.1\r\nHost: x\r\n\r\n`);
  rawCase('header-no-colon', `GET /v2/ HTTP/1.1\r\nHost: x\r\njunk\r\n\r\n`);
  rawCase('lf-only', `GET /v2/ HTTP/1.1\nHost: x\n\n`);
  rawCase('http2-preface', `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, { mayDrop: true });
  rawCase('http09', `GET /v2/\r\n\r\n`, { mayDrop: true });
  rawCase('missing-host', `GET /v2/${R}/tags/list HTTP/1.1\r\n\r\n`, { nodeLevel: true });
  rawCase(
    'expect-junk',
    `PUT /v2/${R}/manifests/x HTTP/1.1\r\nHost: x\r\nExpect: junk\r\nContent-Length: 2\r\n\r\n{}`,
    {
      nodeLevel: true,
    },
  );
  rawCase(
    'expect-100',
    `PUT /v2/${R}/manifests/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}`,
  );
  rawCase('absolute-form', `GET http://evil.example/v2/ HTTP/1.1\r\nHost: x\r\n\r\n`);
  rawCase('asterisk-form', `OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n`);
  rawCase('fragment', `GET /v2/${R}/tags/list#x HTTP/1.1\r\nHost: x\r\n\r\n`);
  rawCase('binary', Buffer.concat([Buffer.from('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'), g.bytes(512)]));
  rawCase('pure-binary', Buffer.concat([g.bytes(200), Buffer.from('\r\n\r\n')]), { mayDrop: true });

  // Requests outside /v2 (only the status is checked there).
  const ROOT = [
    '/',
    `/../../../../tmp/${MARKER}`,
    '/%2e%2e/%2e%2e/etc/passwd',
    '/v1/search?q=%00&n=-1',
    '/v1/_ping',
    '/v3/',
    '/v2x',
    '/V2/',
    '//v2/',
    '/v2/../v2/',
    '/v2/%2e%2e/',
    '/favicon.ico',
    `/v1/search?q=${'x'.repeat(10_000)}`,
    '/v1/search?n=1e9&page=-1',
    '/v1/search?page=999999999&n=100',
    '/%00',
    '/%',
  ];
  families.push([
    'root',
    34,
    (i) => ({
      family: 'root',
      method: g.pick(['GET', 'HEAD', 'POST', 'DELETE']),
      path: ROOT[i % ROOT.length] as string,
    }),
  ]);

  const cases: FuzzCase[] = [];
  for (const [, count, gen] of families) for (let i = 0; i < count; i++) cases.push(gen(i));
  cases.push(...rawCases);

  // Oversized manifests (> 4 MiB), with a Content-Length and streamed without one.
  const big = (n: number): Buffer =>
    Buffer.concat([Buffer.from('{"schemaVersion":2,"x":"'), Buffer.alloc(n, 0x61), Buffer.from('"}')]);
  const oversized = [big(4 * 1024 * 1024), big(6 * 1024 * 1024), g.bytes(5 * 1024 * 1024)];
  for (const [j, payload] of oversized.entries()) {
    cases.push({
      family: 'manifest-oversize',
      method: 'PUT',
      path: v2(R, `manifests/big${j}`),
      // Keep-alive, so that the server reads (and drops) the rest after its early 413 rather than closing.
      headers: { 'Content-Type': OCI_MANIFEST, Connection: 'keep-alive' },
      body: payload,
    });
    cases.push({
      family: 'manifest-oversize-streamed',
      method: 'PUT',
      path: v2(R, `manifests/bigs${j}`),
      headers: { 'Content-Type': OCI_MANIFEST, Connection: 'keep-alive' },
      body: () => slowBody(payload, 256 * 1024, 0),
    });
  }
  return g.shuffle(cases);
}

// ---------------------------------------------------------------------------------------------------------
// Running and checking

interface Outcome {
  readonly status: number | null;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

async function send(url: string, c: FuzzCase): Promise<Outcome> {
  if (c.raw) {
    const r = await rawRequest(url, c.raw, 10_000);
    return { status: r.status, headers: r.headers, body: r.body };
  }
  const res: HttpResponse = await request(url, c.path, {
    method: c.method,
    headers: c.headers ?? {},
    body: c.body === undefined ? null : Buffer.isBuffer(c.body) ? c.body : c.body(),
    timeoutMs: 15_000,
  });
  return { status: res.status, headers: res.headers, body: res.body };
}

/** The problem with an outcome, or null when it is acceptable. */
function judge(c: FuzzCase, o: Outcome): string | null {
  if (o.status === null) return c.mayDrop ? null : 'connection closed without a response';
  if (o.status >= 500) return `server error ${o.status}`;
  if (c.nodeLevel) return null;
  const isV2 = c.path === '/v2' || c.path.startsWith('/v2/') || c.path.startsWith('/v2?');
  if (o.status >= 400 && isV2 && c.method !== 'HEAD') {
    let code: unknown;
    try {
      code = (JSON.parse(o.body.toString('utf8')) as { errors?: { code?: unknown }[] }).errors?.[0]?.code;
    } catch {
      return `${o.status} without a JSON error envelope`;
    }
    if (typeof code !== 'string' || !SPEC_CODES.has(code))
      return `${o.status} with error code ${String(code)}`;
  }
  return null;
}

function describeCase(c: FuzzCase, o: Outcome | null, problem: string): string {
  const shown = (s: string): string => (s.length > 160 ? `${s.slice(0, 160)}...(${s.length} chars)` : s);
  const req = c.raw
    ? `raw ${JSON.stringify(shown(c.raw.toString('latin1')))}`
    : `${c.method} ${shown(c.path)} headers=${shown(JSON.stringify(c.headers ?? {}))} body=${
        c.body === undefined ? 'none' : Buffer.isBuffer(c.body) ? `${c.body.length}B` : 'streamed'
      }`;
  const res = o ? `-> ${o.status} ${shown(o.body.toString('utf8'))}` : '';
  return `[${c.family}] ${problem}: ${req} ${res}`;
}

/** What the server wrote besides access-log lines: crashes, stack traces, error-level records (last 60 lines). */
function serverErrors(output: string): string {
  return output
    .split('\n')
    .filter((l) => l.trim() !== '' && !(l.startsWith('{') && /"level":(10|20|30|40),/.test(l)))
    .slice(-60)
    .map((l) => (l.length > 600 ? `${l.slice(0, 600)}...` : l))
    .join('\n');
}

async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await walk(dir, r)));
    else out.push(r);
  }
  return out;
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/**
 * Every file the documented layout allows in the data dir: `berth.db*`, and the filesystem driver's root `blobs/`
 * holding keys `blobs/<alg>/<xx>/<hex>` (src/storage/paths.ts) and its private `_uploads/<id>/data`, `_tmp/<id>`.
 */
const DATA_DIR_FILES = new RegExp(
  `^(berth\\.db(-wal|-shm|-journal)?|berth\\.reserve|blobs/blobs/sha256/[0-9a-f]{2}/[0-9a-f]{64}|blobs/blobs/sha512/[0-9a-f]{2}/[0-9a-f]{128}|blobs/_uploads/${UUID}/data|blobs/_tmp/${UUID})$`,
);

/** Content the cases refer to: a repository with a blob, a config, a tagged manifest and open upload sessions. */
async function createFixtures(url: string): Promise<Fixtures> {
  const g = new Gen(SEED ^ 0x9e3779b9);
  const repo = 'fuzz/valid';
  const otherRepo = 'fuzz/other';
  const blob = g.bytes(2000);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const blobDigest = await pushBlob(url, repo, blob);
  const configDigest = await pushBlob(url, repo, config);
  const manifestDigest = await pushManifest(
    url,
    repo,
    'latest',
    imageManifest({ digest: configDigest, size: config.length }, [{ digest: blobDigest, size: blob.length }]),
  );
  const otherBlobDigest = await pushBlob(url, otherRepo, g.bytes(1000));
  const idOf = (location: string): string => location.split('?')[0]?.split('/').pop() as string;
  const sessions: string[] = [];
  for (let i = 0; i < 12; i++) sessions.push(idOf(await startUpload(url, repo)));
  const otherSessions: string[] = [];
  for (let i = 0; i < 3; i++) otherSessions.push(idOf(await startUpload(url, otherRepo)));
  return {
    repo,
    otherRepo,
    blob,
    blobDigest,
    configDigest,
    configSize: config.length,
    manifestDigest,
    otherBlobDigest,
    sessions,
    otherSessions,
  };
}

describe(`malformed requests (seed 0x${SEED.toString(16)})`, () => {
  let parent: string;
  let dataDir: string;
  let canary: string;
  let berth: RunningBerth;
  let fx: Fixtures;

  before(async () => {
    parent = await mkdtemp(path.join(tmpdir(), 'berth-fuzz-'));
    dataDir = path.join(parent, 'data');
    canary = path.join(parent, 'canary');
    await mkdir(dataDir);
    await mkdir(canary);
    berth = await startBerth({ dataDir });
    fx = await createFixtures(berth.url);
  });

  after(async () => {
    await berth?.dispose();
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  it(`answers >= 1000 generated malformed requests with < 500 and spec error envelopes (seed 0x${SEED.toString(16)})`, async (t) => {
    const cases = buildCases(fx, SEED);
    assert.ok(cases.length >= 1000, `generated ${cases.length} cases`);
    const problems: string[] = [];
    const statuses = new Map<number | null, number>();
    let next = 0;
    const started = Date.now();
    const worker = async (): Promise<void> => {
      while (next < cases.length) {
        const c = cases[next++] as FuzzCase;
        let outcome: Outcome | null = null;
        let problem: string | null;
        try {
          outcome = await send(berth.url, c);
          problem = judge(c, outcome);
        } catch (e) {
          problem = `request failed: ${(e as Error).message}`;
        }
        statuses.set(outcome?.status ?? null, (statuses.get(outcome?.status ?? null) ?? 0) + 1);
        if (problem) problems.push(describeCase(c, outcome, problem));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const elapsed = Date.now() - started;
    t.diagnostic(
      `${cases.length} requests in ${elapsed} ms; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
    );
    assert.ok(elapsed < 60_000, `the run took ${elapsed} ms`);
    // Group by family and problem so one bug does not drown the others.
    const groups = new Map<string, string[]>();
    for (const p of problems) {
      const key = p.slice(0, p.indexOf(':', p.indexOf(']')));
      groups.set(key, [...(groups.get(key) ?? []), p]);
    }
    const report = [...groups]
      .map(([key, list]) => `${key} (${list.length}x), e.g.\n    ${list.slice(0, 3).join('\n    ')}`)
      .join('\n  ');
    const exited = berth.process.exitCode !== null || berth.process.signalCode !== null;
    assert.ok(
      !exited && problems.length === 0,
      [
        exited ? `the server process exited during the run:\n${serverErrors(berth.output())}` : '',
        problems.length > 0
          ? `${problems.length} of ${cases.length} requests were mishandled:\n  ${report}`
          : '',
      ].join('\n'),
    );
  });

  it('still answers GET /v2/ and serves a push + pull round-trip', async () => {
    const base = await request(berth.url, '/v2/');
    assert.equal(base.status, 200);
    assert.deepEqual(JSON.parse(base.body.toString()), {});

    const g = new Gen(SEED + 1);
    const repo = 'fuzz/after';
    const layer = g.bytes(300_000);
    const config = Buffer.from('{"os":"linux"}');
    const layerDigest = await pushBlobChunked(berth.url, repo, layer, 64 * 1024);
    const configDigest = await pushBlob(berth.url, repo, config);
    const manifest = imageManifest({ digest: configDigest, size: config.length }, [
      { digest: layerDigest, size: layer.length },
    ]);
    const manifestDigest = await pushManifest(berth.url, repo, 'v1', manifest);
    assert.equal(manifestDigest, sha256(manifest));

    const m = await request(berth.url, `/v2/${repo}/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(m.status, 200);
    assert.ok(m.body.equals(manifest), 'manifest bytes round-trip');
    for (const [digest, bytes] of [
      [layerDigest, layer],
      [configDigest, config],
      [fx.blobDigest, fx.blob],
    ] as const) {
      const repoOf = digest === fx.blobDigest ? fx.repo : repo;
      const b = await request(berth.url, `/v2/${repoOf}/blobs/${digest}`);
      assert.equal(b.status, 200, `GET blob ${digest}`);
      assert.equal(sha256(b.body), digest);
      assert.ok(b.body.equals(bytes));
    }
    const catalog = await request(berth.url, '/v2/_catalog');
    assert.equal(catalog.status, 200);
    const repos = (JSON.parse(catalog.body.toString()) as { repositories: string[] }).repositories;
    for (const r of repos)
      assert.match(r, /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/);
    assert.ok(
      repos.includes(repo) && repos.includes(fx.repo),
      `catalog lists the repositories: ${repos.join(', ')}`,
    );
  });

  it('wrote nothing outside the data directory and kept its layout', async () => {
    assert.deepEqual(await readdir(canary), [], 'the canary directory next to the data dir stays empty');
    assert.deepEqual((await readdir(parent)).sort(), ['canary', 'data'], 'nothing new next to the data dir');
    for (const dir of [tmpdir(), parent, PROJECT_ROOT, path.dirname(parent), '/etc']) {
      assert.equal(existsSync(path.join(dir, MARKER)), false, `no ${MARKER} in ${dir}`);
    }
    const files = await walk(dataDir);
    const unexpected = files.filter((f) => !DATA_DIR_FILES.test(f));
    assert.deepEqual(unexpected, [], 'every file in the data dir belongs to the documented layout');
    assert.equal(berth.process.exitCode, null, 'the server is still running');
    assert.equal(berth.process.signalCode, null, 'the server is still running');
  });

  it('logged no unexpected (internal) errors while answering them', () => {
    const unexpected = berth
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"unexpected error"'));
    assert.deepEqual(
      unexpected.map((l) => l.slice(0, 600)),
      [],
      'a malformed request must be a client error, never an internal one (each of these was answered 500 UNKNOWN)',
    );
  });
});

/**
 * A client that disappears after sending headers and part of the body (a cancelled `docker push`, a dropped
 * connection). On a fresh process, where the first requests are slowest and the window between the handler
 * starting and the storage driver consuming the body is widest: an error event on the body stream with no
 * listener there used to crash the whole process.
 */
describe('clients hanging up in the middle of a request body', () => {
  let berth: RunningBerth;
  before(async () => {
    berth = await startBerth();
  });
  after(async () => {
    await berth?.dispose();
  });

  it('survives clients that hang up in the middle of a request body', async () => {
    const repo = 'hangup/repo';
    const session = (await startUpload(berth.url, repo)).split('?')[0] as string;
    const digest = `sha256:${'ab'.repeat(32)}`;
    const heads = [
      `PATCH ${session} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n`,
      `PATCH ${session} HTTP/1.1\r\nHost: x\r\nContent-Range: 0-99\r\nContent-Length: 100\r\n\r\n`,
      `PATCH ${session} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n`,
      `PUT ${session}?digest=${digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n`,
      `POST /v2/${repo}/blobs/uploads/?digest=${digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n`,
      `PUT /v2/${repo}/manifests/cut HTTP/1.1\r\nHost: x\r\nContent-Type: ${OCI_MANIFEST}\r\nContent-Length: 100\r\n\r\n`,
    ];
    for (const head of heads) {
      for (let round = 0; round < 3; round++) {
        // Headers and the start of the body, then the client is gone.
        await rawRequest(berth.url, `${head}{"schemaVersion":`, 5_000).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
        const exited = berth.process.exitCode !== null || berth.process.signalCode !== null;
        assert.ok(
          !exited,
          `the server process died after a client hung up mid-body on ${JSON.stringify(head.split('\r\n')[0])}:\n${serverErrors(berth.output())}`,
        );
        const base = await request(berth.url, '/v2/');
        assert.equal(base.status, 200);
      }
    }
    // None of the cut chunks counted: the session is empty and completes normally.
    const status = await request(berth.url, session);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, '0-0', 'the cut chunks did not count');
    const data = Buffer.from('complete after hang-ups');
    const done = await request(berth.url, `${session}?digest=${sha256(data)}`, {
      method: 'PUT',
      headers: { 'Content-Range': `0-${data.length - 1}` },
      body: data,
    });
    assert.equal(done.status, 201, done.body.toString());
    const blob = await request(berth.url, `/v2/${repo}/blobs/${sha256(data)}`);
    assert.ok(blob.body.equals(data));
    const unexpected = berth
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"unexpected error"'));
    assert.deepEqual(
      unexpected.map((l) => l.slice(0, 400)),
      [],
      'a client hanging up is not an internal error (logged as "unexpected error", i.e. answered 500)',
    );
  });
});
