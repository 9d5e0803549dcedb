/**
 * HTTPS serving: reads and checks the `tls.*` files into `https.ServerOptions`, hot-reloads them into the
 * running server (new handshakes get the new certificate, open connections are left alone), and names the
 * verified client certificate of a connection (mutual TLS).
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync, statSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Socket } from 'node:net';
import {
  createSecureContext,
  type SecureContextOptions,
  type Server as TlsServer,
  TLSSocket,
} from 'node:tls';
import { ConfigError } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

export type TlsConfig = Config['tls'];
/** What `watchTls` logs through (a pino/fastify logger fits). */
export interface TlsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Protocol settings of every context (initial and reloaded). */
const TLS_DEFAULTS = { minVersion: 'TLSv1.2' } as const satisfies SecureContextOptions;

function errorText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code && err.syscall ? err.code : (err.message ?? String(e));
}

function readPem(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`config key ${key}: cannot read ${file}: ${errorText(e)}`);
  }
}

/** Parses every certificate of a PEM file (a chain or a bundle); at least one is required. */
function parseCertificates(key: string, file: string, pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(`config key ${key}: ${file} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (e) {
      throw new ConfigError(`config key ${key}: certificate ${i + 1} in ${file} is invalid: ${errorText(e)}`);
    }
  });
}

export interface TlsMaterial {
  /** What `createSecureContext`/`setSecureContext` takes: key, certificate chain, client CAs, protocol floor. */
  readonly context: SecureContextOptions;
  /** The server's own (first) certificate. */
  readonly leaf: X509Certificate;
}

/**
 * Reads and checks the configured files: PEM certificate chain, a private key that matches its first
 * certificate and, when client certificates are on, the client CA bundle. Null when TLS is off. Throws a
 * ConfigError naming the key of the file at fault.
 */
export function readTlsMaterial(tls: TlsConfig): TlsMaterial | null {
  if (tls.certificate === null) return null;
  if (tls.key === null) throw new ConfigError('config key tls.key: tls.certificate and tls.key go together');
  const certPem = readPem('tls.certificate', tls.certificate);
  const keyPem = readPem('tls.key', tls.key);
  const [leaf] = parseCertificates('tls.certificate', tls.certificate, certPem) as [X509Certificate];
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (e) {
    throw new ConfigError(`config key tls.key: ${tls.key} is not a usable PEM private key: ${errorText(e)}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      `config key tls.key: ${tls.key} does not match the certificate in ${tls.certificate}`,
    );
  }
  let ca: string | undefined;
  if (tls.clientAuth !== 'none') {
    if (tls.clientCA === null)
      throw new ConfigError('config key tls.clientCA: client certificates need a CA');
    ca = readPem('tls.clientCA', tls.clientCA);
    parseCertificates('tls.clientCA', tls.clientCA, ca);
  }
  const context: SecureContextOptions = {
    ...TLS_DEFAULTS,
    cert: certPem,
    key: keyPem,
    ...(ca !== undefined ? { ca } : {}),
  };
  try {
    createSecureContext(context); // what OpenSSL itself may still refuse (e.g. a key type it can't use)
  } catch (e) {
    throw new ConfigError(`config key tls.certificate: ${tls.certificate} cannot be used: ${errorText(e)}`);
  }
  return { context, leaf };
}

/**
 * The HTTPS server options for `tls`, or null when no certificate is configured. With `clientAuth`
 * `optional` or `require` the server asks for a client certificate verified against `tls.clientCA`; only
 * `require` refuses handshakes without a valid one (with `optional`, an invalid one counts as none).
 */
export function loadTlsOptions(tls: TlsConfig): HttpsServerOptions | null {
  const material = readTlsMaterial(tls);
  if (material === null) return null;
  return {
    ...material.context,
    ALPNProtocols: ['http/1.1'],
    ...(tls.clientAuth !== 'none'
      ? { requestCert: true, rejectUnauthorized: tls.clientAuth === 'require' }
      : {}),
  };
}

/** Loggable facts about a certificate. */
export function describeCertificate(cert: X509Certificate): Record<string, string | undefined> {
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    subjectAltName: cert.subjectAltName,
    serialNumber: cert.serialNumber,
    validTo: new Date(cert.validTo).toISOString(),
  };
}

function watchedFiles(tls: TlsConfig): string[] {
  return [tls.certificate, tls.key, tls.clientAuth !== 'none' ? tls.clientCA : null].filter(
    (f): f is string => f !== null,
  );
}

function statSignature(s: Stats): string {
  return `${s.mtimeMs}:${s.size}:${s.ino}`;
}

function failedSignature(e: unknown): string {
  return `!${(e as NodeJS.ErrnoException).code ?? 'error'}`;
}

/**
 * Polls the certificate, key (and client CA) files every `tls.reloadInterval` ms (mtime, size and inode, so
 * in-place writes, renames and symlink swaps are all seen) and, when one changed, loads them again into
 * `server.setSecureContext`: new handshakes use the new certificate, established connections keep theirs.
 * A file that does not load is logged and the previous certificate stays. Returns a function that stops it.
 */
export function watchTls(server: TlsServer, tls: TlsConfig, log: TlsLogger): () => void {
  const files = watchedFiles(tls);
  if (files.length === 0 || tls.reloadInterval <= 0) return () => {};
  let last = files
    .map((f) => {
      try {
        return statSignature(statSync(f));
      } catch (e) {
        return failedSignature(e);
      }
    })
    .join('|');
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const check = async (): Promise<void> => {
    const signatures = await Promise.all(
      files.map((f) => stat(f).then(statSignature, (e: unknown) => failedSignature(e))),
    );
    const current = signatures.join('|');
    if (current === last || stopped) return;
    // Remember it even when loading fails: a broken file is reported once, and its next change retried.
    last = current;
    try {
      const material = readTlsMaterial(tls);
      if (material === null) return;
      server.setSecureContext(material.context);
      log.info({ certificate: describeCertificate(material.leaf) }, 'TLS certificate reloaded');
    } catch (e) {
      log.error(
        { err: { message: (e as Error).message } },
        'TLS certificate reload failed; keeping the previous certificate',
      );
    }
  };
  const schedule = (): void => {
    timer = setTimeout(() => {
      check()
        .catch((e: unknown) => log.error({ err: e }, 'TLS certificate check failed'))
        .finally(() => {
          if (!stopped) schedule();
        });
    }, tls.reloadInterval);
    timer.unref();
  };
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * The common name (CN) of the client certificate of a connection when the client sent one and it verified
 * against `tls.clientCA`; null otherwise (plain HTTP, no certificate, one that did not verify, or one without
 * exactly one non-empty CN).
 */
export function peerCertificateName(socket: Socket | TLSSocket | null | undefined): string | null {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return null;
  const cn: unknown = (cert.subject as unknown as Record<string, unknown> | undefined)?.CN;
  // Several common names (Node lists them as an array) name nobody: which one is "the" name differs between
  // implementations (OpenSSL and Node take the first, Go the last), so picking one could authenticate a
  // certificate as another principal than its issuer or a proxy in front of Berth sees in it.
  return typeof cn === 'string' && cn !== '' ? cn : null;
}
