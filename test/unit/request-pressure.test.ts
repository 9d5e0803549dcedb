/**
 * Background jobs yield to requests: the gate says busy only while requests wait AND the event loop is saturated,
 * and the runner postpones claims while it does, never longer than `maxDeferMs`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RequestPressure, type LoadGate } from '../../src/jobs/request-pressure.ts';
import { JobRunner } from '../../src/jobs/runner.ts';
import { testDatabases, type TestDatabase } from '../helpers/databases.ts';

/**
 * Keeps the event loop busy for `ms`: short synchronous stretches on successive turns of the loop (utilization is
 * accounted as the loop turns, not in the middle of one long synchronous block).
 */
async function spin(ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const stretch = Math.min(end, performance.now() + 5);
    while (performance.now() < stretch) {
      // busy
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('RequestPressure', () => {
  it('is busy only with requests in flight and a saturated event loop', async () => {
    const gate = new RequestPressure({ minRequests: 2, utilization: 0.8, windowMs: 50 });
    await spin(80);
    assert.equal(gate.busy(), false, 'a busy loop without requests is not pressure');
    gate.requestStarted();
    gate.requestStarted();
    assert.equal(gate.requests, 2);
    await spin(80);
    assert.equal(gate.busy(), true, 'requests waiting on a saturated loop');
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(gate.busy(), false, 'requests on an idle loop are not pressure');
    gate.requestEnded();
    await spin(80);
    assert.equal(gate.busy(), false, 'one request alone is not pressure');
    gate.requestEnded();
    gate.requestEnded();
    assert.equal(gate.requests, 0, 'never below zero');
  });
});

describe('JobRunner with a busy gate', () => {
  let db: TestDatabase;
  before(async () => {
    const [sqlite] = await testDatabases();
    db = await (sqlite as { create(): Promise<TestDatabase> }).create();
  });
  after(() => db.cleanup());

  it('claims nothing while the gate is busy, then runs the jobs once maxDeferMs has passed or it is free', async () => {
    let busy = true;
    const gate: LoadGate = { busy: () => busy };
    const ran: number[] = [];
    const runner = new JobRunner(db.store.jobStore(), { gate, maxDeferMs: 400, pollIntervalMs: 20 });
    runner.register('work', async (payload: number) => void ran.push(payload));
    runner.start();
    try {
      const started = performance.now();
      await runner.enqueue('work', 1);
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.deepEqual(ran, [], 'deferred while busy');
      await until('the job after maxDeferMs', () => ran.length === 1);
      assert.ok(performance.now() - started >= 350, 'not before maxDeferMs');
      busy = false;
      await runner.enqueue('work', 2);
      await until('the job once the gate is free', () => ran.length === 2);
      assert.deepEqual(ran, [1, 2]);
    } finally {
      await runner.stop();
    }
  });
});
