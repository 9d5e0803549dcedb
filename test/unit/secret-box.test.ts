/** The secret box that seals stored registry credentials (remote/secret-box.ts). */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { SecretBox, SecretKeyMismatchError, SecretKeyMissingError } from '../../src/remote/secret-box.ts';

describe('SecretBox', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('round-trips under a configured key, with a fresh nonce each time', async () => {
    const box = new SecretBox({ key: 'a key of sixteen+ chars', keyFile: null, generate: false });
    const a = await box.seal('pässword');
    const b = await box.seal('pässword');
    assert.notEqual(a, b);
    assert.ok(!a.includes('pässword'));
    assert.equal(await box.open(a), 'pässword');
    assert.equal(await box.open(b), 'pässword');
  });

  it('refuses values sealed under another key, or altered', async () => {
    const one = new SecretBox({ key: 'the first key, long enough', keyFile: null, generate: false });
    const two = new SecretBox({ key: 'the other key, long enough', keyFile: null, generate: false });
    const sealed = await one.seal('secret');
    await assert.rejects(two.open(sealed), SecretKeyMismatchError);
    const raw = Buffer.from(sealed.slice(3), 'base64');
    raw[raw.length - 1] = (raw[raw.length - 1] as number) ^ 1;
    await assert.rejects(one.open(`v1.${raw.toString('base64')}`), SecretKeyMismatchError);
    await assert.rejects(one.open('v2.abc'), SecretKeyMismatchError);
  });

  it('creates a key file (mode 600) on first use when allowed, and reuses it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-secret-'));
    dirs.push(dir);
    const file = path.join(dir, 'secret.key');
    const box = new SecretBox({ key: null, keyFile: file, generate: true });
    const sealed = await box.seal('x');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.ok((await readFile(file, 'utf8')).trim().length >= 16);
    const again = new SecretBox({ key: null, keyFile: file, generate: false });
    assert.equal(await again.open(sealed), 'x');
  });

  it('needs a key where none may be created', async () => {
    const none = new SecretBox({ key: null, keyFile: null, generate: false });
    await assert.rejects(none.seal('x'), SecretKeyMissingError);
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-secret-'));
    dirs.push(dir);
    const missing = new SecretBox({ key: null, keyFile: path.join(dir, 'absent'), generate: false });
    await assert.rejects(missing.seal('x'), SecretKeyMissingError);
    assert.throws(() => new SecretBox({ key: 'short', keyFile: null, generate: false }), /16 characters/);
  });
});
