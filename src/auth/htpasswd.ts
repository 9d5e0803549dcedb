/**
 * An htpasswd file as `registry:2` reads it: `user:bcrypt-hash` lines. Only bcrypt entries are accepted (as
 * distribution does); others are ignored with a warning. The file is re-read when its mtime or size changes.
 */
import { readFileSync, statSync } from 'node:fs';
import { verifyPassword } from './passwords.ts';

/**
 * A well-formed bcrypt hash: `$2a$`/`$2b$`/`$2y$`, a cost of 04 to 31, 22 characters of salt and 31 of hash in
 * bcrypt's base64. Anything else (a truncated line, a cost out of range) cannot be checked (bcryptjs throws),
 * so it is ignored like other non-bcrypt lines rather than failing each login of that user.
 */
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

export class Htpasswd {
  private entries = new Map<string, string>();
  private stamp = '';
  private checkedAt = 0;

  constructor(
    private readonly path: string,
    private readonly warn: (message: string) => void = () => undefined,
    private readonly recheckMs = 2000,
  ) {
    this.reload(true);
  }

  /** True when the file has `username` and `password` matches its bcrypt hash. */
  async verify(username: string, password: string): Promise<boolean> {
    this.reload(false);
    const hash = this.entries.get(username);
    return hash !== undefined && verifyPassword(password, hash);
  }

  /** True when the file lists `username`. */
  has(username: string): boolean {
    this.reload(false);
    return this.entries.has(username);
  }

  private reload(initial: boolean): void {
    const now = Date.now();
    if (!initial && now - this.checkedAt < this.recheckMs) return;
    this.checkedAt = now;
    let stamp: string;
    let text: string;
    try {
      const st = statSync(this.path);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (stamp === this.stamp) return;
      // Read errors (a directory, no permission, removed after the stat) are the file's too: at start they stop
      // it with the file's name; later the previous entries stay rather than every login failing with a 500.
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if (initial) throw new Error(`cannot read htpasswd file ${this.path}: ${(e as Error).message}`);
      this.warn(`htpasswd file ${this.path} is unreadable; keeping the previous entries`);
      return;
    }
    const entries = new Map<string, string>();
    for (const [i, raw] of text.split(/\r?\n/).entries()) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      const user = line.slice(0, colon);
      const hash = line.slice(colon + 1);
      if (colon <= 0 || !BCRYPT.test(hash)) {
        this.warn(`htpasswd line ${i + 1} is not a bcrypt entry; ignored`);
        continue;
      }
      entries.set(user, hash);
    }
    this.entries = entries;
    this.stamp = stamp;
  }
}
