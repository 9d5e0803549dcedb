/** Standard Webhooks signing, checked with the verifier written from the specification. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  generateSecret,
  isValidSecret,
  sign,
  verify,
  WebhookVerificationError,
} from '../../src/webhooks/signing.ts';

const NOW = new Date('2026-12-07T05:00:00.000Z');
const BODY = '{"events":[{"id":"e1"}]}';

describe('Standard Webhooks signing', () => {
  it('generates whsec_ secrets of 32 random bytes', () => {
    const a = generateSecret();
    assert.match(a, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.equal(Buffer.from(a.slice(6), 'base64').length, 32);
    assert.notEqual(a, generateSecret());
    assert.equal(isValidSecret(a), true);
    assert.equal(isValidSecret('whsec_c2VjcmV0'), false);
    assert.equal(isValidSecret('secret'), false);
  });

  it('signs id.timestamp.body with the decoded key, as the specification example does', () => {
    // The specification's example: secret, id, timestamp, body and expected signature.
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    const headers = sign(
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      body,
      { secret, previousSecret: null, previousSecretUntil: null },
      new Date(1614265330 * 1000),
    );
    assert.deepEqual(headers, {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    });
    const key = Buffer.from(secret.slice(6), 'base64');
    const independent = createHmac('sha256', key)
      .update(`msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.${body}`)
      .digest('base64');
    assert.equal(headers['webhook-signature'], `v1,${independent}`);
  });

  it('verifies a signed body, and refuses a tampered body, a wrong secret, an old or future timestamp, missing headers', () => {
    const secret = generateSecret();
    const headers = sign('evt-1', BODY, { secret, previousSecret: null, previousSecretUntil: null }, NOW);
    assert.equal(verify(secret, headers, BODY, { now: NOW }), 'evt-1');
    assert.equal(
      verify(secret, headers, Buffer.from(BODY), { now: new Date(NOW.getTime() + 299_000) }),
      'evt-1',
    );
    assert.throws(
      () => verify(secret, headers, BODY.replace('e1', 'e2'), { now: NOW }),
      WebhookVerificationError,
    );
    assert.throws(() => verify(generateSecret(), headers, BODY, { now: NOW }), /no matching signature/);
    assert.throws(() => verify(secret, headers, BODY, { now: new Date(NOW.getTime() + 301_000) }), /too old/);
    assert.throws(() => verify(secret, headers, BODY, { now: new Date(NOW.getTime() - 301_000) }), /too new/);
    assert.throws(
      () => verify(secret, { ...headers, 'webhook-id': 'evt-2' }, BODY, { now: NOW }),
      /no matching/,
    );
    const { ['webhook-signature']: _dropped, ...unsigned } = headers;
    assert.throws(() => verify(secret, unsigned, BODY, { now: NOW }), /missing webhook-signature/);
    // Header names are case-insensitive; a v2 or malformed entry is skipped.
    assert.equal(
      verify(
        secret,
        {
          'Webhook-Id': 'evt-1',
          'Webhook-Timestamp': headers['webhook-timestamp'],
          'Webhook-Signature': `v2,xyz bogus ${headers['webhook-signature']}`,
        },
        BODY,
        { now: NOW },
      ),
      'evt-1',
    );
  });

  it('signs with both secrets during the grace period after a rotation, each verifying on its own', () => {
    const current = generateSecret();
    const previous = generateSecret();
    const until = new Date(NOW.getTime() + 3_600_000);
    const headers = sign(
      'evt-1',
      BODY,
      { secret: current, previousSecret: previous, previousSecretUntil: until },
      NOW,
    );
    const signatures = headers['webhook-signature'].split(' ');
    assert.equal(signatures.length, 2);
    for (const s of signatures) assert.match(s, /^v1,[A-Za-z0-9+/]{43}=$/);
    assert.equal(verify(current, headers, BODY, { now: NOW }), 'evt-1');
    assert.equal(verify(previous, headers, BODY, { now: NOW }), 'evt-1');
    // Each signature alone verifies with its own secret only.
    const first = { ...headers, 'webhook-signature': signatures[0] as string };
    const second = { ...headers, 'webhook-signature': signatures[1] as string };
    assert.equal(verify(current, first, BODY, { now: NOW }), 'evt-1');
    assert.throws(() => verify(previous, first, BODY, { now: NOW }), WebhookVerificationError);
    assert.equal(verify(previous, second, BODY, { now: NOW }), 'evt-1');

    const after = new Date(until.getTime() + 1000);
    const later = sign(
      'evt-1',
      BODY,
      { secret: current, previousSecret: previous, previousSecretUntil: until },
      after,
    );
    assert.equal(later['webhook-signature'].split(' ').length, 1);
    assert.throws(() => verify(previous, later, BODY, { now: after }), WebhookVerificationError);
  });
});
