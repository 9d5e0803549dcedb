/**
 * Tests that need something the machine may lack are skipped with the reason, except under CI (`CI=true`),
 * where they fail: the rule (`test/helpers/skip.ts`) and the probes that go through it.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { missing } from '../helpers/clients.ts';
import { postgresSkipReason } from '../helpers/postgres.ts';
import { skipOrFail } from '../helpers/skip.ts';

const ci = process.env.CI;

/** Sets the CI variable (undefined: unset) for the rest of the test. */
function setCi(value: string | undefined): void {
  if (value === undefined) delete process.env.CI;
  else process.env.CI = value;
}

/** Nothing listens on port 1 of the loopback address. */
const UNREACHABLE_POSTGRES = 'postgres://postgres:secret@127.0.0.1:1/test';

describe('skipping for a missing service', () => {
  afterEach(() => setCi(ci));

  it('outside CI, a missing service is a skip reason', async () => {
    for (const value of [undefined, '', 'false', '1']) {
      setCi(value);
      assert.equal(skipOrFail('thing not installed'), 'thing not installed');
      assert.equal(skipOrFail(false), false);
      assert.equal(missing('berth-no-such-tool'), 'berth-no-such-tool not installed');
      const reason = await postgresSkipReason(UNREACHABLE_POSTGRES);
      assert.match(
        String(reason),
        /^PostgreSQL not reachable at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test: /,
      );
    }
  });

  it('under CI=true, a missing service fails with the reason', async () => {
    setCi('true');
    assert.throws(() => skipOrFail('thing not installed'), /^Error: thing not installed; under CI/);
    assert.throws(() => missing('node', 'berth-no-such-tool'), /berth-no-such-tool not installed; under CI/);
    await assert.rejects(
      postgresSkipReason(UNREACHABLE_POSTGRES),
      /PostgreSQL not reachable at .*; under CI/,
    );
  });

  it('under CI=true, what is there still runs', () => {
    setCi('true');
    assert.equal(skipOrFail(false), false);
    assert.equal(missing('node'), false);
  });
});
