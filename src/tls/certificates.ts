/**
 * Development certificates (`berth cert`): a self-signed CA and, signed by it, a server certificate for the
 * given host names and addresses and optional client certificates for mutual TLS. EC P-256 keys (PKCS#8 PEM),
 * SHA-256 signatures, X.509 generated with `@peculiar/x509` on WebCrypto (no openssl needed).
 *
 * Files in the output directory:
 * - `ca.crt`, `ca.key`: the CA (reused when both exist, so server and client certificates can be re-issued
 *   without clients having to trust a new CA);
 * - `server.crt`, `server.key`: the server certificate, the leaf only (clients trust `ca.crt`, which is a root
 *   they need anyway, so sending it along would add nothing);
 * - `NAME.crt`, `NAME.key` per client: `CN=NAME`, clientAuth.
 *
 * Files holding keys are written with mode 0600; every file is written to a temp name and renamed into place,
 * so a running server that watches them never reads half a file.
 */
// @peculiar/x509 uses tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  createPrivateKey,
  randomBytes,
  webcrypto,
  X509Certificate as NodeX509Certificate,
} from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';

type CryptoKey = webcrypto.CryptoKey;
/** Node's WebCrypto, typed as the library's (DOM) `Crypto`. */
const crypto = webcrypto as unknown as NonNullable<
  Parameters<typeof x509.X509CertificateGenerator.create>[1]
>;

const DAY_MS = 86_400_000;
/** Certificates start an hour in the past so that a client whose clock lags a little accepts them. */
const BACKDATE_MS = 3_600_000;

export const DEFAULT_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1'];
export const DEFAULT_DAYS = 365;
/** Validity of a newly created CA. */
export const CA_DAYS = 3650;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** A certificate and its private key, both PEM. */
export interface PemPair {
  readonly cert: string;
  readonly key: string;
}

/** A CA able to sign: its certificate (PEM and parsed) and its private key. */
export interface CertificateAuthority extends PemPair {
  readonly certificate: x509.X509Certificate;
  readonly signingKey: CryptoKey;
  readonly signingAlgorithm: { name: string; hash: string };
}

export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CertificateError';
  }
}

/** A random positive 128-bit serial number (hex), as RFC 5280 and Go's x509 want. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function validity(days: number, now: Date): { notBefore: Date; notAfter: Date } {
  if (!Number.isInteger(days) || days < 1) throw new CertificateError(`days must be a positive integer`);
  return {
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + days * DAY_MS),
  };
}

async function newKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** A new self-signed CA (EC P-256, `CN=<name>`, basicConstraints CA, keyCertSign + cRLSign). */
export async function createCertificateAuthority(
  options: { name?: string; days?: number; now?: Date } = {},
): Promise<CertificateAuthority> {
  // A short random suffix keeps the subjects of different developers' CAs apart in a trust store.
  const name = options.name ?? `Berth development CA ${randomBytes(3).toString('hex')}`;
  const keys = await newKeyPair();
  const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' };
  const subject: x509.JsonName = [{ O: ['Berth'] }, { CN: [name] }];
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject,
      issuer: subject,
      ...validity(options.days ?? CA_DAYS, options.now ?? new Date()),
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return {
    cert: certificate.toString('pem') + '\n',
    key: await privateKeyPem(keys.privateKey),
    certificate,
    signingKey: keys.privateKey,
    signingAlgorithm,
  };
}

/** Loads an existing CA from PEM (EC P-256/P-384/P-521 or RSA key), checking that it is a CA and its key fits. */
export async function loadCertificateAuthority(
  certPem: string,
  keyPem: string,
): Promise<CertificateAuthority> {
  let certificate: x509.X509Certificate;
  let nodeCert: NodeX509Certificate;
  try {
    nodeCert = new NodeX509Certificate(certPem);
    certificate = new x509.X509Certificate(nodeCert.raw);
  } catch (e) {
    throw new CertificateError(`not a PEM certificate: ${(e as Error).message}`);
  }
  if (!nodeCert.ca)
    throw new CertificateError(`${nodeCert.subject.replace(/\n/g, ', ')} is not a CA certificate`);
  let keyObject;
  try {
    keyObject = createPrivateKey(keyPem);
  } catch (e) {
    throw new CertificateError(`not a PEM private key: ${(e as Error).message}`);
  }
  if (!nodeCert.checkPrivateKey(keyObject)) {
    throw new CertificateError('the CA key does not match the CA certificate');
  }
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  let importAlgorithm: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
  let signingAlgorithm: { name: string; hash: string };
  if (keyObject.asymmetricKeyType === 'ec') {
    const curves: Record<string, [string, string]> = {
      prime256v1: ['P-256', 'SHA-256'],
      secp384r1: ['P-384', 'SHA-384'],
      secp521r1: ['P-521', 'SHA-512'],
    };
    const curve = curves[keyObject.asymmetricKeyDetails?.namedCurve ?? ''];
    if (!curve) {
      throw new CertificateError(`unsupported EC curve ${keyObject.asymmetricKeyDetails?.namedCurve}`);
    }
    importAlgorithm = { name: 'ECDSA', namedCurve: curve[0] };
    signingAlgorithm = { name: 'ECDSA', hash: curve[1] };
  } else if (keyObject.asymmetricKeyType === 'rsa') {
    importAlgorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    signingAlgorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  } else {
    throw new CertificateError(`unsupported CA key type ${keyObject.asymmetricKeyType}`);
  }
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, importAlgorithm, false, ['sign']);
  return { cert: certPem, key: keyPem, certificate, signingKey, signingAlgorithm };
}

/** SAN entries for host names and IP addresses (IPv6 without brackets); throws on anything else. */
export function subjectAltNames(hosts: readonly string[]): x509.JsonGeneralName[] {
  const names: x509.JsonGeneralName[] = [];
  const seen = new Set<string>();
  for (const raw of hosts) {
    const host = raw.trim().replace(/^\[(.*)\]$/, '$1');
    let entry: x509.JsonGeneralName;
    if (isIP(host)) {
      entry = { type: 'ip', value: host };
    } else if (
      host.length <= 253 &&
      /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i.test(host)
    ) {
      entry = { type: 'dns', value: host.toLowerCase().replace(/\.$/, '') };
    } else {
      throw new CertificateError(`not a host name or IP address: ${JSON.stringify(raw)}`);
    }
    const k = `${entry.type}:${entry.value}`;
    if (!seen.has(k)) {
      seen.add(k);
      names.push(entry);
    }
  }
  if (names.length === 0) throw new CertificateError('a server certificate needs at least one host');
  return names;
}

export interface LeafOptions {
  readonly days?: number;
  readonly now?: Date;
}

async function issueLeaf(
  ca: CertificateAuthority,
  commonName: string,
  extensions: x509.Extension[],
  options: LeafOptions,
): Promise<PemPair> {
  const keys = await newKeyPair();
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: [{ CN: [commonName] }],
      issuer: ca.certificate.subjectName,
      ...validity(options.days ?? DEFAULT_DAYS, options.now ?? new Date()),
      publicKey: keys.publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: ca.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        ...extensions,
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(ca.certificate, false, crypto),
      ],
    },
    crypto,
  );
  return { cert: certificate.toString('pem') + '\n', key: await privateKeyPem(keys.privateKey) };
}

/** A server certificate (serverAuth) for `hosts`: DNS SANs for names, IP SANs for addresses. */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  hosts: readonly string[] = DEFAULT_HOSTS,
  options: LeafOptions = {},
): Promise<PemPair> {
  const names = subjectAltNames(hosts);
  const cn = (names.find((n) => n.type === 'dns') ?? names[0]) as x509.JsonGeneralName;
  return issueLeaf(
    ca,
    cn.value,
    [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
    options,
  );
}

/** A client certificate (clientAuth) with `CN=<name>`: the user or robot it authenticates. */
export async function issueClientCertificate(
  ca: CertificateAuthority,
  name: string,
  options: LeafOptions = {},
): Promise<PemPair> {
  return issueLeaf(
    ca,
    name,
    [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
    options,
  );
}

/** Client names become file names: no separators, no dot files, and not the CA's or the server's names. */
export function checkClientName(name: string): void {
  if (
    name.length === 0 ||
    name.length > 64 ||
    /[/\\\0\s]/.test(name) ||
    name.startsWith('.') ||
    ['ca', 'server'].includes(name)
  ) {
    throw new CertificateError(
      `invalid client name ${JSON.stringify(name)}: 1 to 64 characters, no slashes or spaces, not starting with a dot, not "ca" or "server"`,
    );
  }
}

export interface WriteCertificatesOptions {
  /** Output directory (created when missing). */
  readonly outDir: string;
  /** Host names and IP addresses of the server certificate; `DEFAULT_HOSTS` when empty or absent. */
  readonly hosts?: readonly string[];
  /** Validity of the server and client certificates in days. */
  readonly days?: number;
  /** Client certificate names (`CN`). */
  readonly clients?: readonly string[];
  readonly now?: Date;
}

export interface WrittenFile {
  readonly path: string;
  readonly description: string;
}

export interface WrittenCertificates {
  readonly outDir: string;
  /** True when `ca.crt`/`ca.key` were created now, false when existing ones were reused. */
  readonly caCreated: boolean;
  readonly caCert: string;
  readonly caKey: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly hosts: readonly string[];
  readonly clients: readonly { name: string; cert: string; key: string }[];
  readonly files: readonly WrittenFile[];
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Writes `data` to `file` atomically (temp file + rename) with `mode`. */
async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await chmod(tmp, mode);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Creates (or reuses) the CA in `outDir` and (re-)issues the server certificate and the requested client
 * certificates there.
 */
export async function writeCertificates(options: WriteCertificatesOptions): Promise<WrittenCertificates> {
  const outDir = path.resolve(options.outDir);
  const hosts = options.hosts && options.hosts.length > 0 ? [...options.hosts] : [...DEFAULT_HOSTS];
  subjectAltNames(hosts); // validate before anything is written
  const clients = [...new Set(options.clients ?? [])];
  clients.forEach(checkClientName);
  const leafOptions: LeafOptions = {
    days: options.days ?? DEFAULT_DAYS,
    ...(options.now ? { now: options.now } : {}),
  };
  validity(leafOptions.days as number, new Date());

  await mkdir(outDir, { recursive: true });
  const caCert = path.join(outDir, 'ca.crt');
  const caKey = path.join(outDir, 'ca.key');
  const files: WrittenFile[] = [];
  const [existingCert, existingKey] = await Promise.all([readIfExists(caCert), readIfExists(caKey)]);
  let ca: CertificateAuthority;
  let caCreated: boolean;
  if (existingCert !== null && existingKey !== null) {
    try {
      ca = await loadCertificateAuthority(existingCert, existingKey);
    } catch (e) {
      throw new CertificateError(`cannot reuse the CA in ${outDir}: ${(e as Error).message}`);
    }
    caCreated = false;
  } else if (existingCert !== null || existingKey !== null) {
    throw new CertificateError(
      `${outDir} has ${existingCert !== null ? 'ca.crt but no ca.key' : 'ca.key but no ca.crt'}; remove it or add the missing file`,
    );
  } else {
    ca = await createCertificateAuthority(options.now ? { now: options.now } : {});
    await writeAtomic(caKey, ca.key, 0o600);
    await writeAtomic(caCert, ca.cert, 0o644);
    files.push({ path: caCert, description: 'CA certificate (give it to clients)' });
    files.push({ path: caKey, description: 'CA private key (keep it; reused to re-issue certificates)' });
    caCreated = true;
  }

  const server = await issueServerCertificate(ca, hosts, leafOptions);
  const serverCert = path.join(outDir, 'server.crt');
  const serverKey = path.join(outDir, 'server.key');
  await writeAtomic(serverKey, server.key, 0o600);
  await writeAtomic(serverCert, server.cert, 0o644);
  files.push({ path: serverCert, description: `server certificate for ${hosts.join(', ')}` });
  files.push({ path: serverKey, description: 'server private key' });

  const written: { name: string; cert: string; key: string }[] = [];
  for (const name of clients) {
    const pair = await issueClientCertificate(ca, name, leafOptions);
    const cert = path.join(outDir, `${name}.crt`);
    const key = path.join(outDir, `${name}.key`);
    await writeAtomic(key, pair.key, 0o600);
    await writeAtomic(cert, pair.cert, 0o644);
    files.push({ path: cert, description: `client certificate CN=${name}` });
    files.push({ path: key, description: `client private key of ${name}` });
    written.push({ name, cert, key });
  }
  return { outDir, caCreated, caCert, caKey, serverCert, serverKey, hosts, clients: written, files };
}
