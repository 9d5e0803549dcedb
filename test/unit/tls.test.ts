/**
 * HTTPS: the certificates `berth cert` writes, `loadTlsOptions` (errors name the key), a real HTTPS server from
 * `createApp` + `loadTlsOptions` (trust, untrusted clients, mutual TLS, `peerCertificateName`) and hot reload of
 * the certificate files (open keep-alive connections survive, new connections see the new certificate).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/app.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { createServices, type Services } from '../../src/container.ts';
import { loadTlsOptions, peerCertificateName, watchTls, type TlsLogger } from '../../src/http/tls.ts';
import { writeCertificates } from '../../src/tls/certificates.ts';
import { missing } from '../helpers/clients.ts';
import { PROJECT_ROOT } from '../helpers/server.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

let work: string;
/** Made by `berth cert --out <certs> --client alice` (the CLI). */
let certs: string;
/** A second, unrelated CA with a client certificate `mallory`. */
let otherCerts: string;
let services: Services;

const file = (dir: string, name: string): string => path.join(dir, name);
const cert = async (p: string): Promise<X509Certificate> => new X509Certificate(await readFile(p));

function berthCert(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'cert', ...args], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tlsConfig(tls: Record<string, unknown>): Config {
  const overrides: Record<string, unknown> = { data: path.join(work, 'data') };
  for (const [k, v] of Object.entries(tls)) overrides[`tls.${k}`] = v;
  return loadConfig({ env: {}, overrides });
}

interface Answer {
  status: number;
  body: string;
  socket: TLSSocket;
  reused: boolean;
  serial: string;
}

/** One GET over TLS; rejects on handshake or connection errors. */
function get(port: number, urlPath: string, options: https.RequestOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: urlPath, method: 'GET', agent: false, ...options },
      (res) => {
        const chunks: Buffer[] = [];
        const socket = res.socket as TLSSocket;
        const serial = socket.getPeerCertificate().serialNumber;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            socket,
            reused: req.reusedSocket,
            serial,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

interface TestServer {
  app: FastifyInstance;
  port: number;
  config: Config;
  close(): Promise<void>;
}

async function startServer(tls: Record<string, unknown>): Promise<TestServer> {
  const config = tlsConfig(tls);
  const app = createApp(config, services, {
    https: loadTlsOptions(config.tls),
    logger: false,
    backgroundJobs: false,
  });
  app.get('/whoami', async (request) => ({ name: peerCertificateName(request.raw.socket) }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address && typeof address === 'object');
  return { app, port: address.port, config, close: () => app.close() };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'berth-tls-'));
  certs = file(work, 'certs');
  const r = berthCert(['--out', certs, '--client', 'alice']);
  assert.equal(r.status, 0, r.stderr);
  otherCerts = file(work, 'other');
  await writeCertificates({ outDir: otherCerts, clients: ['mallory'] });
  services = await createServices(tlsConfig({}));
});

after(async () => {
  await services?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('berth cert', () => {
  it('writes a CA, a server certificate with the default SANs and a client certificate', async () => {
    const ca = await cert(file(certs, 'ca.crt'));
    const server = await cert(file(certs, 'server.crt'));
    const client = await cert(file(certs, 'alice.crt'));

    assert.equal(ca.ca, true);
    assert.equal(ca.subject, ca.issuer, 'the CA is self-signed');
    assert.ok(ca.verify(ca.publicKey));
    assert.ok(ca.checkPrivateKey(createPrivateKey(await readFile(file(certs, 'ca.key')))));
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');

    assert.equal(server.ca, false);
    assert.equal(server.issuer, ca.subject);
    assert.ok(server.verify(ca.publicKey), 'signed by the CA');
    assert.ok(server.checkIssued(ca));
    assert.equal(server.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkIP('::1'), '::1');
    assert.deepEqual(server.keyUsage, [SERVER_AUTH]);
    assert.ok(server.checkPrivateKey(createPrivateKey(await readFile(file(certs, 'server.key')))));
    assert.equal(server.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(Date.parse(server.validTo) - Date.now() > 360 * 86_400_000, 'valid for about a year');

    assert.equal(client.subject, 'CN=alice');
    assert.ok(client.verify(ca.publicKey));
    assert.deepEqual(client.keyUsage, [CLIENT_AUTH]);
    assert.ok(client.checkPrivateKey(createPrivateKey(await readFile(file(certs, 'alice.key')))));
  });

  it('writes keys with mode 0600', async () => {
    for (const name of ['ca.key', 'server.key', 'alice.key']) {
      assert.equal((await stat(file(certs, name))).mode & 0o777, 0o600, name);
    }
    assert.equal((await stat(file(certs, 'server.crt'))).mode & 0o077, 0o044 & (await stat(certs)).mode);
  });

  it('passes openssl verify with the server and client purposes', { skip: missing('openssl') }, () => {
    for (const [purpose, name] of [
      ['sslserver', 'server.crt'],
      ['sslclient', 'alice.crt'],
    ] as const) {
      const r = spawnSync(
        'openssl',
        ['verify', '-purpose', purpose, '-CAfile', file(certs, 'ca.crt'), file(certs, name)],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, `${name}: ${r.stdout}${r.stderr}`);
    }
  });

  it('reuses an existing CA, re-issues the server certificate for --host and prints the config lines', async () => {
    const dir = file(work, 'reissue');
    await mkdir(dir);
    await copyFile(file(certs, 'ca.crt'), file(dir, 'ca.crt'));
    await copyFile(file(certs, 'ca.key'), file(dir, 'ca.key'));
    const r = berthCert([
      '--out',
      dir,
      '--host',
      'registry.example.test,10.1.2.3',
      '--host',
      '[fd00::5]',
      '--days',
      '7',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Reused the CA/);
    assert.match(r.stdout, new RegExp(`certificate: ${file(dir, 'server.crt')}`));
    assert.match(r.stdout, new RegExp(`key: ${file(dir, 'server.key')}`));
    assert.deepEqual(
      await readFile(file(dir, 'ca.crt')),
      await readFile(file(certs, 'ca.crt')),
      'CA unchanged',
    );
    const ca = await cert(file(dir, 'ca.crt'));
    const server = await cert(file(dir, 'server.crt'));
    assert.ok(server.verify(ca.publicKey));
    assert.equal(
      server.subjectAltName,
      'DNS:registry.example.test, IP Address:10.1.2.3, IP Address:FD00:0:0:0:0:0:0:5',
    );
    assert.equal(server.subject, 'CN=registry.example.test');
    assert.ok(Date.parse(server.validTo) - Date.now() < 8 * 86_400_000);
  });

  it('rejects bad hosts and client names with exit code 2', () => {
    const dir = file(work, 'bad');
    let r = berthCert(['--out', dir, '--host', 'not a host']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /berth cert: not a host name or IP address: "not a host"/);
    r = berthCert(['--out', dir, '--client', '../escape']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /invalid client name/);
  });
});

describe('loadTlsOptions', () => {
  const throwsConfig = (tls: Record<string, unknown>, pattern: RegExp): void => {
    assert.throws(
      () => loadTlsOptions(tlsConfig(tls).tls),
      (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
    );
  };

  it('is null without a certificate', () => {
    assert.equal(loadTlsOptions(tlsConfig({}).tls), null);
  });

  it('names the key of a file that cannot be read or used', async () => {
    const missing = file(work, 'missing.pem');
    const garbage = file(work, 'garbage.pem');
    await writeFile(garbage, 'not a pem file\n');
    const serverCrt = file(certs, 'server.crt');
    const serverKey = file(certs, 'server.key');
    throwsConfig(
      { certificate: missing, key: serverKey },
      new RegExp(`^config key tls\\.certificate: cannot read ${missing}: ENOENT$`),
    );
    throwsConfig({ certificate: serverCrt, key: missing }, /^config key tls\.key: cannot read .*: ENOENT$/);
    throwsConfig(
      { certificate: garbage, key: serverKey },
      /^config key tls\.certificate: .* holds no PEM certificate/,
    );
    throwsConfig(
      { certificate: serverCrt, key: garbage },
      /^config key tls\.key: .* is not a usable PEM private key/,
    );
    throwsConfig(
      { certificate: serverCrt, key: file(certs, 'alice.key') },
      /^config key tls\.key: .*alice\.key does not match the certificate in .*server\.crt$/,
    );
    throwsConfig(
      { certificate: serverCrt, key: serverKey, clientCA: missing, clientAuth: 'require' },
      /^config key tls\.clientCA: cannot read .*: ENOENT$/,
    );
    throwsConfig(
      { certificate: serverCrt, key: serverKey, clientCA: garbage, clientAuth: 'optional' },
      /^config key tls\.clientCA: .* holds no PEM certificate/,
    );
  });

  it('sets TLS defaults and the client certificate mode', () => {
    const base = { certificate: file(certs, 'server.crt'), key: file(certs, 'server.key') };
    const none = loadTlsOptions(tlsConfig(base).tls);
    assert.ok(none);
    assert.equal(none.minVersion, 'TLSv1.2');
    assert.deepEqual(none.ALPNProtocols, ['http/1.1']);
    assert.equal(none.requestCert, undefined);
    assert.equal(none.ca, undefined);
    const optional = loadTlsOptions(
      tlsConfig({ ...base, clientCA: file(certs, 'ca.crt'), clientAuth: 'optional' }).tls,
    );
    assert.equal(optional?.requestCert, true);
    assert.equal(optional?.rejectUnauthorized, false);
    assert.match(String(optional?.ca), /BEGIN CERTIFICATE/);
    const required = loadTlsOptions(
      tlsConfig({ ...base, clientCA: file(certs, 'ca.crt'), clientAuth: 'require' }).tls,
    );
    assert.equal(required?.requestCert, true);
    assert.equal(required?.rejectUnauthorized, true);
  });
});

describe('HTTPS server', () => {
  let server: TestServer;
  let ca: Buffer;

  before(async () => {
    ca = await readFile(file(certs, 'ca.crt'));
    server = await startServer({ certificate: file(certs, 'server.crt'), key: file(certs, 'server.key') });
  });
  after(async () => server?.close());

  it('answers GET /v2/ over TLS to a client that trusts the CA', async () => {
    const res = await get(server.port, '/v2/', { ca });
    assert.equal(res.status, 200);
    assert.equal(res.body, '{}');
    assert.equal(res.socket.alpnProtocol, false, 'the client offered no ALPN protocol');
    assert.match(String(res.socket.getProtocol()), /^TLSv1\.[23]$/);
    assert.equal(res.serial, (await cert(file(certs, 'server.crt'))).serialNumber);
  });

  it('is refused by a client that does not trust the CA', async () => {
    await assert.rejects(get(server.port, '/v2/'), (e: NodeJS.ErrnoException) => {
      assert.match(String(e.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER/);
      return true;
    });
    await assert.rejects(get(server.port, '/v2/', { ca: await readFile(file(otherCerts, 'ca.crt')) }));
  });

  it('refuses TLS 1.1 and negotiates http/1.1 by ALPN', async () => {
    await assert.rejects(get(server.port, '/v2/', { ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }));
    const res = await get(server.port, '/v2/', {
      ca,
      ALPNProtocols: ['h2', 'http/1.1'],
    } as https.RequestOptions);
    assert.equal(res.socket.alpnProtocol, 'http/1.1');
  });

  it('has no client certificate name without mutual TLS', async () => {
    const res = await get(server.port, '/whoami', { ca });
    assert.deepEqual(JSON.parse(res.body), { name: null });
  });
});

describe('mutual TLS', () => {
  let ca: Buffer;
  let alice: { cert: Buffer; key: Buffer };
  let mallory: { cert: Buffer; key: Buffer };

  before(async () => {
    ca = await readFile(file(certs, 'ca.crt'));
    alice = { cert: await readFile(file(certs, 'alice.crt')), key: await readFile(file(certs, 'alice.key')) };
    mallory = {
      cert: await readFile(file(otherCerts, 'mallory.crt')),
      key: await readFile(file(otherCerts, 'mallory.key')),
    };
  });

  const mtls = (clientAuth: string): Record<string, unknown> => ({
    certificate: file(certs, 'server.crt'),
    key: file(certs, 'server.key'),
    clientCA: file(certs, 'ca.crt'),
    clientAuth,
  });

  it('require: refuses a handshake without a valid client certificate, accepts one from berth cert --client', async () => {
    const server = await startServer(mtls('require'));
    try {
      await assert.rejects(get(server.port, '/v2/', { ca }), 'no client certificate');
      await assert.rejects(
        get(server.port, '/v2/', { ca, ...mallory }),
        'a client certificate of another CA',
      );
      const res = await get(server.port, '/whoami', { ca, ...alice });
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body), { name: 'alice' });
    } finally {
      await server.close();
    }
  });

  it('optional: accepts clients without a certificate and names verified ones only', async () => {
    const server = await startServer(mtls('optional'));
    try {
      assert.deepEqual(JSON.parse((await get(server.port, '/whoami', { ca })).body), { name: null });
      assert.deepEqual(JSON.parse((await get(server.port, '/whoami', { ca, ...alice })).body), {
        name: 'alice',
      });
      const untrusted = await get(server.port, '/whoami', { ca, ...mallory });
      assert.equal(untrusted.status, 200);
      assert.deepEqual(
        JSON.parse(untrusted.body),
        { name: null },
        'a certificate that did not verify names nobody',
      );
    } finally {
      await server.close();
    }
  });

  it('peerCertificateName is null for non-TLS sockets', () => {
    assert.equal(peerCertificateName(undefined), null);
    assert.equal(peerCertificateName(null), null);
  });
});

describe('certificate reload', () => {
  let dir: string;
  let ca: Buffer;
  let server: TestServer;
  let stopWatch: () => void;
  const logged: { level: string; msg: string; obj: unknown }[] = [];
  const log: TlsLogger = {
    info: (obj, msg) => logged.push({ level: 'info', msg, obj }),
    warn: (obj, msg) => logged.push({ level: 'warn', msg, obj }),
    error: (obj, msg) => logged.push({ level: 'error', msg, obj }),
  };

  before(async () => {
    dir = file(work, 'reload');
    await mkdir(dir);
    await copyFile(file(certs, 'ca.crt'), file(dir, 'ca.crt'));
    await copyFile(file(certs, 'ca.key'), file(dir, 'ca.key'));
    await writeCertificates({ outDir: dir });
    ca = await readFile(file(dir, 'ca.crt'));
    server = await startServer({
      certificate: file(dir, 'server.crt'),
      key: file(dir, 'server.key'),
      reloadInterval: '200ms',
    });
    stopWatch = watchTls(server.app.server as unknown as TlsServer, server.config.tls, log);
  });
  after(async () => {
    stopWatch?.();
    await server?.close();
  });

  it('serves a new certificate to new connections and keeps open ones working', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    try {
      const first = await get(server.port, '/whoami', { agent });
      assert.equal(first.status, 200);
      const oldSerial = first.serial;
      assert.equal(oldSerial, (await cert(file(dir, 'server.crt'))).serialNumber);

      await writeCertificates({ outDir: dir }); // same CA, new server certificate and key
      const newSerial = (await cert(file(dir, 'server.crt'))).serialNumber;
      assert.notEqual(newSerial, oldSerial);

      const fresh = await eventually('a new connection sees the new certificate', async () => {
        const res = await get(server.port, '/whoami', { ca });
        return res.serial === newSerial ? res : undefined;
      });
      assert.equal(fresh.status, 200);

      const again = await get(server.port, '/whoami', { agent });
      assert.equal(again.reused, true, 'the keep-alive connection was reused');
      assert.equal(again.socket, first.socket);
      assert.equal(again.status, 200);
      assert.equal(again.serial, oldSerial, 'the open connection keeps its certificate');
      assert.ok(logged.some((l) => l.level === 'info' && l.msg === 'TLS certificate reloaded'));
    } finally {
      agent.destroy();
    }
  });

  it('keeps the previous certificate when the new files are broken, and recovers when they are fixed', async () => {
    const good = (await cert(file(dir, 'server.crt'))).serialNumber;
    logged.length = 0;
    // A key that does not belong to the certificate: loaded, refused, logged.
    await copyFile(file(certs, 'alice.key'), file(dir, 'server.key'));
    await eventually('the broken key is reported', async () =>
      logged.find((l) => l.level === 'error') ? true : undefined,
    );
    assert.match(JSON.stringify(logged.find((l) => l.level === 'error')?.obj), /tls\.key: .* does not match/);
    assert.equal((await get(server.port, '/whoami', { ca })).serial, good, 'still the previous certificate');

    await writeFile(file(dir, 'server.crt'), 'garbage');
    await eventually('the broken certificate is reported', async () =>
      logged.filter((l) => l.level === 'error').length >= 2 ? true : undefined,
    );
    assert.equal((await get(server.port, '/whoami', { ca })).serial, good);

    await writeCertificates({ outDir: dir });
    const fixed = (await cert(file(dir, 'server.crt'))).serialNumber;
    await eventually('the fixed certificate is served', async () =>
      (await get(server.port, '/whoami', { ca })).serial === fixed ? true : undefined,
    );
  });
});
