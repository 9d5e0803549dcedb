/**
 * Client certificates as credentials (docs/configuration.md "Mutual TLS"): a real HTTPS server from `createApp` +
 * `loadTlsOptions` in `auth.mode: token` with `tls.clientCA` and `tls.clientAuth: optional` (and `require`). A
 * verified certificate whose common name is an enabled user or a valid robot authenticates a request that has no
 * Authorization header; any other certificate counts as none (anonymous); an Authorization header wins over the
 * certificate. Requests go over real sockets (`https.request`, no keep-alive), since `inject()` has no TLS.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/app.ts';
import { hashPassword, hashSecret } from '../../src/auth/passwords.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createServices, type Services } from '../../src/container.ts';
import { loadTlsOptions } from '../../src/http/tls.ts';
import {
  issueClientCertificate,
  issueServerCertificate,
  loadCertificateAuthority,
  writeCertificates,
  type CertificateAuthority,
} from '../../src/tls/certificates.ts';
import { imageManifest, manifestBytes, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST } from '../helpers/app.ts';
import { basic, bearer, parseChallenge, type Headers } from '../helpers/auth.ts';

/** A client certificate and its key (PEM). */
interface Identity {
  readonly cert: Buffer;
  readonly key: Buffer;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let work: string;
let certsDir: string;
let ca: Buffer;
let services: Services;
let server: { app: FastifyInstance; port: number };
/** Client certificates of the configured CA, by common name. */
const ids = new Map<string, Identity>();
/** `CN=alice`, but issued by another CA. */
let foreignAlice: Identity;
/** Certificates of the configured CA that must not authenticate alice, by what is wrong with them. */
const notAlice = new Map<string, Identity>();

function id(name: string): Identity {
  const found = ids.get(name);
  assert.ok(found, `no certificate for ${name}`);
  return found;
}

function configFor(clientAuth: 'optional' | 'require'): ReturnType<typeof loadConfig> {
  return loadConfig({
    env: {},
    overrides: {
      data: path.join(work, 'data'),
      'auth.mode': 'token',
      'tls.certificate': path.join(certsDir, 'server.crt'),
      'tls.key': path.join(certsDir, 'server.key'),
      'tls.clientCA': path.join(certsDir, 'ca.crt'),
      'tls.clientAuth': clientAuth,
    },
  });
}

async function listen(clientAuth: 'optional' | 'require'): Promise<{ app: FastifyInstance; port: number }> {
  const config = configFor(clientAuth);
  const app = createApp(config, services, {
    https: loadTlsOptions(config.tls),
    logger: false,
    backgroundJobs: false,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address && typeof address === 'object');
  return { app, port: address.port };
}

/** One request on a fresh TLS connection (no agent, no keep-alive), presenting `as` when given. */
function request(
  method: string,
  urlPath: string,
  options: { as?: Identity; headers?: Headers; body?: Buffer; port?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: options.port ?? server.port,
        method,
        path: urlPath,
        agent: false,
        ca,
        ...(options.as ? { cert: options.as.cert, key: options.as.key } : {}),
        headers: {
          connection: 'close',
          ...(options.body ? { 'content-length': String(options.body.length) } : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.end(options.body);
  });
}

function assertStatus(res: Answer, status: number, what: string): void {
  assert.equal(res.status, status, `${what}: ${res.status} ${res.body}`);
}

function errorCode(res: Answer): string | undefined {
  return (JSON.parse(res.body) as { errors: { code: string }[] }).errors[0]?.code;
}

type RequestOptions = { as?: Identity; headers?: Headers; port?: number };

/** Uploads `bytes` in one `POST ?digest=`; returns the response. */
function postBlob(repo: string, bytes: Buffer, options: RequestOptions = {}): Promise<Answer> {
  return request('POST', `/v2/${repo}/blobs/uploads/?digest=${sha256(bytes)}`, {
    ...options,
    headers: { ...options.headers, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
}

function putManifest(
  repo: string,
  reference: string,
  bytes: Buffer,
  options: RequestOptions = {},
): Promise<Answer> {
  return request('PUT', `/v2/${repo}/manifests/${reference}`, {
    ...options,
    headers: { ...options.headers, 'content-type': OCI_MANIFEST },
    body: bytes,
  });
}

interface Pushed {
  readonly digest: string;
  /** Another manifest over the same blobs (to try moving the tag). */
  readonly variant: Buffer;
}

/** Pushes a config, a layer and a manifest at `tag`, asserting 201s. */
async function pushImage(repo: string, tag: string, options: RequestOptions = {}): Promise<Pushed> {
  const configBytes = Buffer.from(JSON.stringify({ os: 'linux', nonce: randomBytes(8).toString('hex') }));
  const layerBytes = randomBytes(100);
  for (const bytes of [configBytes, layerBytes]) {
    assertStatus(await postBlob(repo, bytes, options), 201, `blob upload to ${repo}`);
  }
  const manifest = (nonce: string): Buffer =>
    manifestBytes(
      imageManifest({
        config: { mediaType: OCI_CONFIG, digest: sha256(configBytes), size: configBytes.length },
        layers: [{ mediaType: OCI_LAYER, digest: sha256(layerBytes), size: layerBytes.length }],
        annotations: { nonce },
      }),
    );
  const bytes = manifest('1');
  const res = await putManifest(repo, tag, bytes, options);
  assertStatus(res, 201, `manifest PUT ${repo}:${tag}`);
  assert.equal(res.headers['docker-content-digest'], sha256(bytes));
  return { digest: sha256(bytes), variant: manifest('2') };
}

function pullManifest(repo: string, reference: string, options: RequestOptions = {}): Promise<Answer> {
  return request('GET', `/v2/${repo}/manifests/${reference}`, {
    ...options,
    headers: { accept: OCI_MANIFEST, ...options.headers },
  });
}

/** Asserts a 401 with the Bearer challenge of the built-in token service naming `scope`. */
function assertChallenge(res: Answer, scope: string | null): void {
  assertStatus(res, 401, 'expected a challenge');
  assert.equal(errorCode(res), 'UNAUTHORIZED');
  const { scheme, params } = parseChallenge(res.headers['www-authenticate']);
  assert.equal(scheme, 'Bearer');
  assert.equal(params.realm, `https://127.0.0.1:${server.port}/auth/token`);
  assert.equal(params.service, 'berth');
  assert.equal(params.scope, scope ?? undefined);
}

const ROOT = basic('root', 'root-pw');

/** A client certificate of `authority` whose subject has two CN attributes, `first` and then `second`. */
async function twoCommonNames(authority: CertificateAuthority, first: string, second: string) {
  const crypto = webcrypto as unknown as NonNullable<
    Parameters<typeof x509.X509CertificateGenerator.create>[1]
  >;
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomBytes(8).toString('hex').replace(/^./, '4'),
      subject: [{ CN: [first] }, { CN: [second] }],
      issuer: authority.certificate.subjectName,
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      publicKey: keys.publicKey,
      signingKey: authority.signingKey,
      signingAlgorithm: authority.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    },
    crypto,
  );
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert: certificate.toString('pem'), key: x509.PemConverter.encode(der, 'PRIVATE KEY') };
}

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'berth-client-certs-'));
  certsDir = path.join(work, 'certs');
  const names = [
    'alice',
    'bob',
    'dora',
    'stranger',
    'robot$ci',
    'robot$revoked',
    'robot$expired',
    'robot$nope',
  ];
  const written = await writeCertificates({ outDir: certsDir, clients: names });
  ca = await readFile(written.caCert);
  for (const c of written.clients)
    ids.set(c.name, { cert: await readFile(c.cert), key: await readFile(c.key) });
  const other = await writeCertificates({ outDir: path.join(work, 'other'), clients: ['alice'] });
  const otherAlice = other.clients[0]!;
  foreignAlice = { cert: await readFile(otherAlice.cert), key: await readFile(otherAlice.key) };
  const authority = await loadCertificateAuthority(ca.toString(), await readFile(written.caKey, 'utf8'));
  const pem = (pair: { cert: string; key: string }): Identity => ({
    cert: Buffer.from(pair.cert),
    key: Buffer.from(pair.key),
  });
  notAlice.set(
    'expired',
    pem(
      await issueClientCertificate(authority, 'alice', {
        now: new Date(Date.now() - 10 * 86_400_000),
        days: 1,
      }),
    ),
  );
  notAlice.set('for a server (no clientAuth usage)', pem(await issueServerCertificate(authority, ['alice'])));
  notAlice.set('with two common names (alice and bob)', pem(await twoCommonNames(authority, 'alice', 'bob')));

  services = await createServices(configFor('optional'));
  const store = services.auth.store;
  const user = async (username: string, password: string, isAdmin = false): Promise<void> => {
    await store.createUser({ username, passwordHash: await hashPassword(password), isAdmin });
  };
  const robot = async (name: string, expiresAt: Date | null = null): Promise<void> => {
    await store.createRobot({
      name,
      description: '',
      secretHash: hashSecret(`${name}-secret`),
      expiresAt,
      createdBy: null,
    });
  };
  await user('root', 'root-pw', true);
  await user('alice', 'alice-pw');
  await user('bob', 'bob-pw');
  await user('dora', 'dora-pw');
  await store.updateUser('dora', { disabled: true });
  await robot('robot$ci');
  await robot('robot$revoked');
  await store.updateRobot('robot$revoked', { revokedAt: new Date() });
  await robot('robot$expired', new Date(Date.now() - 60_000));
  await store.createNamespace({ name: 'team', visibility: 'private', description: '' });
  await store.createNamespace({ name: 'pub', visibility: 'public', description: '' });
  for (const [kind, name] of [
    ['user', 'alice'],
    ['user', 'dora'],
    ['robot', 'robot$ci'],
    ['robot', 'robot$revoked'],
    ['robot', 'robot$expired'],
  ] as const) {
    await store.setMember('team', kind, name, 'developer');
  }

  server = await listen('optional');
  await pushImage('team/base', 'v1', { headers: ROOT });
  await pushImage('pub/base', 'v1', { headers: ROOT });
});

after(async () => {
  await server?.app.close();
  await services?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('tls.clientAuth: optional', () => {
  it('without a certificate or credentials a request is anonymous (control)', async () => {
    assertChallenge(await request('GET', '/v2/'), null);
    assertChallenge(await request('GET', '/v2/team/base/tags/list'), 'repository:team/base:pull');
    assertStatus(await pullManifest('pub/base', 'v1'), 200, 'anonymous public pull');
  });

  it('CN=alice (developer in team) pushes to and pulls from team/... with no Authorization header', async () => {
    const alice = id('alice');
    assertStatus(await request('GET', '/v2/', { as: alice }), 200, 'GET /v2/');
    const { digest } = await pushImage('team/app', 'v1', { as: alice });
    const pulled = await pullManifest('team/app', 'v1', { as: alice });
    assertStatus(pulled, 200, 'pull team/app:v1');
    assert.equal(pulled.headers['docker-content-digest'], digest);
    const tags = await request('GET', '/v2/team/base/tags/list', { as: alice });
    assertStatus(tags, 200, 'tags of team/base');
    assert.deepEqual(JSON.parse(tags.body), { name: 'team/base', tags: ['v1'] });
    assertStatus(await pullManifest('pub/base', 'v1', { as: alice }), 200, 'public pull');
  });

  it('the certificate user has exactly their roles: no overwrite as developer, nothing outside team', async () => {
    const alice = id('alice');
    const { variant } = await pushImage('team/moving', 'v1', { as: alice });
    const res = await putManifest('team/moving', 'v1', variant, { as: alice });
    assertStatus(res, 403, 'overwriting a tag as developer');
    assert.equal(errorCode(res), 'DENIED');
    const pubPush = await postBlob('pub/base', randomBytes(10), { as: alice });
    assertStatus(pubPush, 403, 'push to a public namespace without a role');
    assert.equal(errorCode(pubPush), 'DENIED');
  });

  it('CN=robot$ci works as that robot: push and pull in team', async () => {
    const ci = id('robot$ci');
    const { digest } = await pushImage('team/ci', 'build-1', { as: ci });
    const pulled = await pullManifest('team/ci', digest, { as: ci });
    assertStatus(pulled, 200, 'pull by digest');
    assert.equal(pulled.headers['docker-content-digest'], digest);
    // Only its roles: none in pub.
    const pubPush = await postBlob('pub/base', randomBytes(10), { as: ci });
    assertStatus(pubPush, 403, 'robot push to pub');
    assert.match(JSON.parse(pubPush.body).errors[0].message, /denied for robot\$ci/);
  });

  for (const [label, name] of [
    ['an unknown name', 'stranger'],
    ['a disabled user', 'dora'],
    ['a revoked robot', 'robot$revoked'],
    ['an expired robot', 'robot$expired'],
    ['an unknown robot', 'robot$nope'],
  ] as const) {
    it(`a certificate of ${label} (CN=${name}) is treated as anonymous`, async () => {
      const as = id(name);
      assertChallenge(await request('GET', '/v2/', { as }), null);
      assertChallenge(await request('GET', '/v2/team/base/tags/list', { as }), 'repository:team/base:pull');
      assertChallenge(await postBlob('team/base', randomBytes(10), { as }), 'repository:team/base:pull,push');
      assertStatus(await pullManifest('pub/base', 'v1', { as }), 200, 'public pull');
    });
  }

  it('a certificate of the CA naming alice that is expired, for a server or has two CNs is treated as anonymous', async () => {
    for (const [what, as] of notAlice) {
      const tags = await request('GET', '/v2/team/base/tags/list', { as });
      assert.equal(tags.status, 401, `${what}: ${tags.status} ${tags.body}`);
      assertChallenge(tags, 'repository:team/base:pull');
      assertStatus(await pullManifest('pub/base', 'v1', { as }), 200, `${what}: public pull`);
    }
  });

  it('the catalog shows a certificate user what they may pull', async () => {
    const res = await request('GET', '/v2/_catalog', { as: id('alice') });
    assertStatus(res, 200, 'catalog');
    const { repositories } = JSON.parse(res.body) as { repositories: string[] };
    assert.ok(repositories.includes('team/base') && repositories.includes('pub/base'), res.body);
    const stranger = await request('GET', '/v2/_catalog', { as: id('stranger') });
    assertChallenge(stranger, 'registry:catalog:*');
  });

  it('a certificate with a known name from a CA that is not tls.clientCA is treated as anonymous', async () => {
    assertChallenge(
      await request('GET', '/v2/team/base/tags/list', { as: foreignAlice }),
      'repository:team/base:pull',
    );
    assertStatus(await pullManifest('pub/base', 'v1', { as: foreignAlice }), 200, 'public pull');
  });

  it('an Authorization header takes precedence over the certificate', async () => {
    const alice = id('alice');
    // Basic of bob, who has no role in team: denied as bob, although alice's certificate would allow it.
    const asBob = await postBlob('team/app', randomBytes(10), { as: alice, headers: basic('bob', 'bob-pw') });
    assertStatus(asBob, 403, 'Basic bob with the certificate of alice');
    assert.equal(errorCode(asBob), 'DENIED');
    assert.match(JSON.parse(asBob.body).errors[0].message, /denied for bob/);
    // Wrong credentials are refused, not replaced by the certificate.
    assertChallenge(await request('GET', '/v2/', { as: alice, headers: basic('alice', 'wrong') }), null);
    assertChallenge(await request('GET', '/v2/', { as: alice, headers: bearer('not-a-token') }), null);
    // An anonymous token is anonymous, whatever the certificate.
    const anon = await request('GET', '/auth/token?service=berth&scope=repository:team/base:pull', {
      as: alice,
    });
    assertStatus(anon, 200, 'anonymous token');
    const token = (JSON.parse(anon.body) as { token: string }).token;
    const withToken = await request('GET', '/v2/team/base/tags/list', { as: alice, headers: bearer(token) });
    assertStatus(withToken, 401, 'anonymous token on a private repository');
    // And the other way round: bob's certificate with alice's credentials acts as alice.
    await pushImage('team/app', 'v2', { as: id('bob'), headers: basic('alice', 'alice-pw') });
  });
});

describe('tls.clientAuth: require', () => {
  let strict: { app: FastifyInstance; port: number };
  before(async () => {
    strict = await listen('require');
  });
  after(async () => {
    await strict?.app.close();
  });

  it('a client without a certificate cannot connect, not even with credentials', async () => {
    await assert.rejects(request('GET', '/v2/', { port: strict.port }));
    await assert.rejects(request('GET', '/v2/', { port: strict.port, headers: ROOT }));
    await assert.rejects(request('GET', '/v2/pub/base/tags/list', { port: strict.port }));
  });

  it('a certificate of another CA cannot connect', async () => {
    await assert.rejects(request('GET', '/v2/', { port: strict.port, as: foreignAlice }));
  });

  it('with a certificate of the CA, alice pushes and pulls; an unknown name connects but is anonymous', async () => {
    const alice = id('alice');
    assertStatus(await request('GET', '/v2/', { port: strict.port, as: alice }), 200, 'GET /v2/');
    const { digest } = await pushImage('team/strict', 'v1', { port: strict.port, as: alice });
    const pulled = await request('GET', `/v2/team/strict/manifests/v1`, {
      port: strict.port,
      as: alice,
      headers: { accept: OCI_MANIFEST },
    });
    assertStatus(pulled, 200, 'pull');
    assert.equal(pulled.headers['docker-content-digest'], digest);
    const stranger = await request('GET', '/v2/team/strict/tags/list', {
      port: strict.port,
      as: id('stranger'),
    });
    assertStatus(stranger, 401, 'unknown name');
    const pub = await request('GET', '/v2/pub/base/tags/list', { port: strict.port, as: id('stranger') });
    assertStatus(pub, 200, 'public pull by an unknown name');
  });
});
