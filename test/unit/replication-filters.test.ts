/** What replication policies select and how they rename (filters.ts), and the bandwidth limit (throttle.ts). */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { Digest } from '../../src/oci/digest.ts';
import {
  isReferrerTag,
  referrerTag,
  repositoryMatches,
  rewriteName,
  suffixFor,
  tagMatches,
} from '../../src/replication/filters.ts';
import { KeyedLimiter, meteredStream, TokenBucket } from '../../src/replication/throttle.ts';

const HEX = 'a'.repeat(64);

describe('replication filters', () => {
  const policy = {
    repositories: ['prod/**', 'tools/*'],
    excludeRepositories: ['prod/tmp/**'],
    tags: ['v*', 'latest'],
    excludeTags: ['*-rc*'],
  };

  it('selects repositories and tags by include and exclude globs', () => {
    assert.equal(repositoryMatches(policy, 'prod/app'), true);
    assert.equal(repositoryMatches(policy, 'prod/team/app'), true);
    assert.equal(repositoryMatches(policy, 'prod/tmp/x'), false);
    assert.equal(repositoryMatches(policy, 'tools/a/b'), false);
    assert.equal(repositoryMatches(policy, 'dev/app'), false);
    assert.equal(repositoryMatches({ ...policy, repositories: [] }, 'dev/app'), true);
    assert.equal(tagMatches(policy, 'v1.2'), true);
    assert.equal(tagMatches(policy, 'v2-rc1'), false);
    assert.equal(tagMatches(policy, 'main'), false);
    assert.equal(tagMatches({ ...policy, tags: [] }, 'main'), true);
  });

  it('leaves cosign scheme tags to travel with their subject', () => {
    assert.equal(isReferrerTag(`sha256-${HEX}.sig`), true);
    assert.equal(isReferrerTag(`sha256-${HEX}.att`), true);
    assert.equal(isReferrerTag(`sha256-${HEX}`), false);
    assert.equal(tagMatches({ ...policy, tags: [] }, `sha256-${HEX}.sbom`), false);
    assert.equal(referrerTag(`sha256:${HEX}` as Digest, 'sig'), `sha256-${HEX}.sig`);
    assert.equal(suffixFor('application/vnd.dev.cosign.artifact.sig.v1+json'), 'sig');
    assert.equal(suffixFor('application/spdx+json'), 'sbom');
    assert.equal(suffixFor('application/vnd.in-toto+json'), 'att');
    assert.equal(suffixFor(undefined), 'sig');
  });

  it('rewrites destination names', () => {
    assert.equal(rewriteName({ stripPrefix: '', addPrefix: 'mirror' }, 'prod/app'), 'mirror/prod/app');
    assert.equal(rewriteName({ stripPrefix: 'prod', addPrefix: 'staging' }, 'prod/app'), 'staging/app');
    assert.equal(rewriteName({ stripPrefix: 'prod', addPrefix: '' }, 'prod/team/app'), 'team/app');
    assert.equal(rewriteName({ stripPrefix: 'prod', addPrefix: '' }, 'production/app'), 'production/app');
    assert.equal(rewriteName({ stripPrefix: 'prod/app', addPrefix: 'x' }, 'prod/app'), 'x');
    assert.equal(rewriteName({ stripPrefix: '', addPrefix: '' }, 'a/b'), 'a/b');
  });
});

describe('replication bandwidth limit', () => {
  it('passes bytes no faster than the bucket refills, counting them', async () => {
    const rate = 64 * 1024;
    const data = Buffer.alloc(rate * 2 + 1000, 7); // a second's burst, then about 1 s more
    let counted = 0;
    const started = Date.now();
    const chunks: Buffer[] = [];
    for await (const c of meteredStream(Readable.from([data]), new TokenBucket(rate), (n) => (counted += n)))
      chunks.push(c as Buffer);
    const elapsed = Date.now() - started;
    assert.ok(Buffer.concat(chunks).equals(data), 'the bytes pass unchanged');
    assert.equal(counted, data.length);
    assert.ok(elapsed >= 900, `took ${elapsed} ms`);
    assert.ok(elapsed < 5_000, `took ${elapsed} ms`);
  });

  it('counts without a limit', async () => {
    let counted = 0;
    const out: Buffer[] = [];
    for await (const c of meteredStream(
      Readable.from([Buffer.from('abc'), Buffer.from('de')]),
      null,
      (n) => (counted += n),
    ))
      out.push(c as Buffer);
    assert.equal(Buffer.concat(out).toString(), 'abcde');
    assert.equal(counted, 5);
  });

  it('runs at most `limit` holders of a key at once', async () => {
    const limiter = new KeyedLimiter();
    let active = 0;
    let most = 0;
    const job = () =>
      limiter.run('remote', 2, async () => {
        active++;
        most = Math.max(most, active);
        await new Promise((resolve) => setTimeout(resolve, 20));
        active--;
      });
    await Promise.all([job(), job(), job(), job(), job()]);
    assert.equal(most, 2);
  });
});
