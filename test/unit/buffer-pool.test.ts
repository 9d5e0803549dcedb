import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BufferPool } from '../../src/storage/buffer-pool.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('BufferPool', () => {
  it('lends at most capacity buffers and reuses returned ones', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.acquire();
    const b = pool.acquire();
    assert.ok(a && b);
    assert.equal(a.length, 1024);
    assert.equal(pool.acquire(), null, 'exhausted');
    pool.release(a);
    assert.equal(pool.acquire(), a, 'the returned buffer is lent again');
    pool.release(b, false);
    const c = pool.acquire();
    assert.ok(c && c !== b, 'a buffer returned as not reusable is replaced, its slot freed');
    assert.equal(pool.lent, 2);
  });

  it('queues acquireQueued callers first come first served and hands each release to the next', async () => {
    const pool = new BufferPool(16, 1, 1_000);
    const held = pool.acquire()!;
    const order: string[] = [];
    const first = pool.acquireQueued().then((buf) => (order.push('first'), buf));
    const second = pool.acquireQueued().then((buf) => (order.push('second'), buf));
    assert.equal(pool.queued, 2);
    pool.release(held);
    const got = await first;
    assert.equal(got, held, 'the released buffer goes straight to the first in line');
    assert.deepEqual(order, ['first']);
    assert.equal(pool.queued, 1);
    pool.release(got!);
    assert.equal(await second, held);
    assert.deepEqual(order, ['first', 'second']);
    assert.equal(pool.lent, 1);
    assert.equal(pool.queued, 0);
  });

  it('gives queued callers null once no buffer has come back for stallMs, not before', async () => {
    const pool = new BufferPool(16, 2, 60);
    const a = pool.acquire()!;
    const b = pool.acquire()!;
    const waiting = [pool.acquireQueued(), pool.acquireQueued(), pool.acquireQueued()];
    // Keep the pool moving for longer than stallMs: the queue must not give up.
    await sleep(40);
    pool.release(a);
    const firstGot = await waiting[0]!;
    assert.ok(firstGot, 'served by the release');
    await sleep(40);
    pool.release(firstGot);
    assert.ok(await waiting[1]!, '80 ms after queueing, but the pool kept turning over');
    // Now nothing comes back: the last caller gives up after stallMs.
    const started = Date.now();
    assert.equal(await waiting[2]!, null);
    assert.ok(Date.now() - started >= 50, 'gave up only after the pool stalled');
    assert.equal(pool.queued, 0);
    assert.equal(pool.lent, 2, 'b and the buffer the second caller holds');
    pool.release(b);
  });

  it('lends at once without queueing while buffers are free', async () => {
    const pool = new BufferPool(16, 1, 10);
    const buf = await pool.acquireQueued();
    assert.ok(buf);
    assert.equal(pool.queued, 0);
    pool.release(buf);
    assert.equal(pool.lent, 0);
  });
});
