/**
 * Password and secret hashing. Stored passwords use scrypt, a memory-hard KDF (N=2^15, r=8, p=1: 32 MiB and
 * tens of milliseconds per guess), encoded as `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>`. htpasswd entries use
 * bcrypt (`$2y$`/`$2a$`/`$2b$`), verified with bcryptjs, as distribution does.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, createHash } from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';

const scrypt = promisify(scryptCb) as (
  password: string | Buffer,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
const MAXMEM = 128 * N * R * 2;

/** Hashes a password (or robot secret) for storage. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password.normalize('NFC'), salt, KEY_LENGTH, { N, r: R, p: P, maxmem: MAXMEM });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Verifies `password` against a stored scrypt or bcrypt hash, in constant time. False for unknown formats. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (stored.startsWith('scrypt$')) {
    const parts = stored.split('$');
    if (parts.length !== 6) return false;
    const [, n, r, p, saltB64, hashB64] = parts as [string, string, string, string, string, string];
    const expected = Buffer.from(hashB64, 'base64');
    const cost = Number(n);
    if (!Number.isSafeInteger(cost) || cost < 2 || cost > 1 << 20 || expected.length === 0) return false;
    const actual = await scrypt(password.normalize('NFC'), Buffer.from(saltB64, 'base64'), expected.length, {
      N: cost,
      r: Number(r),
      p: Number(p),
      maxmem: 128 * cost * Number(r) * 2,
    });
    return timingSafeEqual(actual, expected);
  }
  if (/^\$2[aby]\$\d\d\$/.test(stored)) {
    return bcrypt.compare(password, stored.replace(/^\$2y\$/, '$2b$'));
  }
  return false;
}

/** A fast, unsalted SHA-256 for high-entropy random secrets (refresh tokens), never for passwords. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

/** Constant-time comparison of two `hashSecret` values. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret));
  const b = Buffer.from(storedHash);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A random secret for robots and refresh tokens (256 bits, base64url). */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}
