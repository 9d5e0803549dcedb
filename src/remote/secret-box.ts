/**
 * Encrypts credentials of remote registries at rest (upstreams of the pull-through cache, replication targets):
 * AES-256-GCM under a key from `secrets.key` (`BERTH_SECRETS_KEY`), or from `secrets.keyFile`. The database
 * holds only sealed values, so a copy of it (a backup, a dump) does not give the credentials away.
 *
 * A sealed value is `v1.<base64 nonce|tag|ciphertext>`; its authentication tag makes a value sealed under another
 * key, or altered, fail to open rather than decrypt to garbage.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

const VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** A sealed value does not open under this key (another key, or altered). */
export class SecretKeyMismatchError extends Error {
  constructor() {
    super('a stored credential does not decrypt with the configured secrets.key (was the key changed?)');
    this.name = 'SecretKeyMismatchError';
  }
}

/** No key is configured where one is required (several instances must share it). */
export class SecretKeyMissingError extends Error {
  constructor() {
    super(
      'storing credentials needs secrets.key (BERTH_SECRETS_KEY), the same on every instance, when metadata is in PostgreSQL',
    );
    this.name = 'SecretKeyMissingError';
  }
}

export interface SecretBoxSource {
  /** Key material (16 characters or more); wins over `keyFile`. */
  readonly key: string | null;
  /** A file holding the key material; created with a random key on first use when `generate` is set. */
  readonly keyFile: string | null;
  /** Whether a missing `keyFile` may be created (one instance with a local data directory). */
  readonly generate: boolean;
}

export class SecretBox {
  private key: Buffer | null = null;

  constructor(private readonly source: SecretBoxSource) {
    if (source.key !== null) this.key = derive(source.key);
  }

  /** Whether values can be sealed and opened (a key is configured, or can be read or created). */
  get configured(): boolean {
    return this.source.key !== null || this.source.keyFile !== null;
  }

  /** Encrypts `plaintext` under the key (loading or creating the key file on first use). */
  async seal(plaintext: string): Promise<string> {
    const key = await this.loadKey(true);
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `${VERSION}.${Buffer.concat([nonce, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  /** Decrypts a value `seal` produced; throws SecretKeyMismatchError when it does not open under this key. */
  async open(sealed: string): Promise<string> {
    const key = await this.loadKey(false);
    const [version, payload] = sealed.split('.', 2);
    if (version !== VERSION || payload === undefined) throw new SecretKeyMismatchError();
    const raw = Buffer.from(payload, 'base64');
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new SecretKeyMismatchError();
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, NONCE_BYTES));
      decipher.setAuthTag(raw.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES));
      return Buffer.concat([
        decipher.update(raw.subarray(NONCE_BYTES + TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw new SecretKeyMismatchError();
    }
  }

  private async loadKey(create: boolean): Promise<Buffer> {
    if (this.key) return this.key;
    const file = this.source.keyFile;
    if (file === null) throw new SecretKeyMissingError();
    try {
      this.key = derive((await readFile(file, 'utf8')).trim());
      return this.key;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !create || !this.source.generate) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new SecretKeyMissingError();
        throw e;
      }
    }
    await mkdir(path.dirname(file), { recursive: true });
    const material = randomBytes(32).toString('base64');
    try {
      // `wx`: of two processes creating it at once, one wins and the other reads the winner's key.
      await writeFile(file, `${material}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    this.key = derive((await readFile(file, 'utf8')).trim());
    return this.key;
  }
}

/** 32 key bytes from any key material (a passphrase or random base64): HKDF-SHA256, bound to this use. */
function derive(material: string): Buffer {
  if (material.length < 16) throw new Error('secrets.key must be 16 characters or more');
  return Buffer.from(hkdfSync('sha256', material, 'berth', 'registry credentials v1', 32));
}
