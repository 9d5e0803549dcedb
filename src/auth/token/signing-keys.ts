/**
 * The token service's signing keys, kept in the metadata database so every instance signs and verifies with the
 * same keys and they survive restarts. One key signs (the newest active one); retired keys still verify until
 * tokens they signed have expired, which makes rotation seamless.
 *
 * Why periodic refresh: another instance may rotate keys. Keys are re-read every `refreshMs`, and at once (rate
 * limited) when a token names an unknown key id.
 */
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWK,
} from 'jose';
import type { AuthStore, SigningKeyRecord } from '../../metadata/auth-store.ts';

export const SIGNING_ALGORITHM = 'ES256';

interface LoadedKey {
  readonly record: SigningKeyRecord;
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey | null;
}

export class SigningKeys {
  private keys: LoadedKey[] = [];
  private loadedAt = 0;
  private loading: Promise<void> | null = null;
  private lastMissRefresh = 0;

  /**
   * @param tokenLifetime how long (ms) a retired key keeps verifying after retirement.
   * @param refreshMs how often keys are re-read from the store.
   */
  constructor(
    private readonly store: AuthStore,
    private readonly tokenLifetime: number,
    private readonly refreshMs = 30_000,
  ) {}

  /** Loads the keys, creating the first one when none is active. */
  async ensure(): Promise<void> {
    await this.reload();
    if (!this.keys.some((k) => k.record.retiredAt === null)) {
      await this.create();
      await this.reload(true);
    }
  }

  /** Creates a new signing key and retires the previous ones; returns the new key id. */
  async rotate(): Promise<string> {
    const previous = (await this.store.listSigningKeys()).filter((k) => k.retiredAt === null);
    const kid = await this.create();
    const now = new Date();
    for (const k of previous) await this.store.retireSigningKey(k.kid, now);
    await this.reload(true);
    return kid;
  }

  /** Deletes retired keys that can no longer have valid tokens; returns their ids. */
  async prune(): Promise<string[]> {
    const cutoff = Date.now() - this.tokenLifetime;
    const gone: string[] = [];
    for (const k of await this.store.listSigningKeys()) {
      if (
        k.retiredAt !== null &&
        k.retiredAt.getTime() < cutoff &&
        (await this.store.deleteSigningKey(k.kid))
      )
        gone.push(k.kid);
    }
    await this.reload(true);
    return gone;
  }

  /** The key that signs new tokens. */
  async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
    await this.fresh();
    const active = this.keys.find((k) => k.record.retiredAt === null && k.privateKey !== null);
    if (!active) {
      await this.ensure();
      return this.signingKey();
    }
    return { kid: active.record.kid, key: active.privateKey as CryptoKey };
  }

  /** The public key for `kid`, if it may still verify tokens; null otherwise. */
  async verificationKey(kid: string): Promise<CryptoKey | null> {
    await this.fresh();
    let found = this.find(kid);
    if (!found && Date.now() - this.lastMissRefresh > 1000) {
      this.lastMissRefresh = Date.now();
      // A read already running may predate the key this token names.
      await this.reload(true);
      found = this.find(kid);
    }
    return found?.publicKey ?? null;
  }

  /** The public keys that may verify tokens, as a JWKS (for `/auth/jwks.json`). */
  async jwks(): Promise<{ keys: JWK[] }> {
    await this.fresh();
    return {
      keys: this.keys
        .filter((k) => this.stillVerifies(k.record))
        .map((k) => ({
          ...(JSON.parse(k.record.publicJwk) as JWK),
          kid: k.record.kid,
          alg: k.record.algorithm,
          use: 'sig',
        })),
    };
  }

  private find(kid: string): LoadedKey | undefined {
    return this.keys.find((k) => k.record.kid === kid && this.stillVerifies(k.record));
  }

  private stillVerifies(record: SigningKeyRecord): boolean {
    return record.retiredAt === null || record.retiredAt.getTime() + this.tokenLifetime > Date.now();
  }

  private async fresh(): Promise<void> {
    if (Date.now() - this.loadedAt > this.refreshMs) await this.reload();
  }

  /**
   * Re-reads the keys. Concurrent periodic refreshes share one read; a caller that has just changed the keys
   * (`afterChange`) gets a read that starts after any read already running, which may predate its change.
   */
  private reload(afterChange = false): Promise<void> {
    if (this.loading && !afterChange) return this.loading;
    const previous = this.loading ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.load());
    this.loading = next;
    const clear = (): void => {
      if (this.loading === next) this.loading = null;
    };
    next.then(clear, clear);
    return next;
  }

  private async load(): Promise<void> {
    const records = await this.store.listSigningKeys();
    const loaded: LoadedKey[] = [];
    for (const record of records) {
      const publicKey = (await importJWK(JSON.parse(record.publicJwk) as JWK, record.algorithm)) as CryptoKey;
      const privateKey =
        record.retiredAt === null
          ? ((await importJWK(JSON.parse(record.privateJwk) as JWK, record.algorithm)) as CryptoKey)
          : null;
      loaded.push({ record, publicKey, privateKey });
    }
    this.keys = loaded;
    this.loadedAt = Date.now();
  }

  private async create(): Promise<string> {
    const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALGORITHM, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const privateJwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    await this.store.addSigningKey({
      kid,
      algorithm: SIGNING_ALGORITHM,
      publicJwk: JSON.stringify(publicJwk),
      privateJwk: JSON.stringify(privateJwk),
      createdAt: new Date(),
    });
    return kid;
  }
}
