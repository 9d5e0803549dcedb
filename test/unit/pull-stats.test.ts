/**
 * The pull statistics recorder: pulls only touch memory; a flush a minute after the first pull writes one batch
 * with one entry per manifest and per tag however many pulls; a failed write keeps its counts for the next flush
 * (merged with newer pulls); stopping writes what is pending and ends counting; memory is bounded.
 */
import assert from 'node:assert/strict';
import { beforeEach, afterEach, describe, it, mock } from 'node:test';
import { PullStatsRecorder } from '../../src/lifecycle/pull-stats.ts';
import { silentLogger } from '../../src/logger.ts';
import type { ManifestPulls, TagPulls } from '../../src/metadata/lifecycle-store.ts';
import type { Digest } from '../../src/oci/digest.ts';

const A = `sha256:${'a'.repeat(64)}` as Digest;
const B = `sha256:${'b'.repeat(64)}` as Digest;

/** A store that records each batch, failing while `failing` is set. */
function fakeStore() {
  const batches: { manifests: ManifestPulls[]; tags: TagPulls[] }[] = [];
  const state = { failing: false };
  return {
    batches,
    state,
    store: {
      async addPulls(manifests: readonly ManifestPulls[], tags: readonly TagPulls[]): Promise<void> {
        if (state.failing) throw new Error('database unavailable');
        batches.push({ manifests: [...manifests], tags: [...tags] });
      },
    },
  };
}

describe('PullStatsRecorder', () => {
  let clock = 1_000;
  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout'] });
  });
  afterEach(() => {
    mock.timers.reset();
  });

  it('writes one entry per manifest and per tag a minute after the first pull, however many pulls', async () => {
    const { store, batches } = fakeStore();
    const recorder = new PullStatsRecorder(store, { logger: silentLogger, now: () => clock });
    for (let i = 0; i < 1000; i++) {
      clock++;
      recorder.record('team/app', A, i % 4 === 0 ? 'v1' : null);
      recorder.record('team/app', B, 'v2');
    }
    assert.equal(batches.length, 0, 'nothing is written on the pull path');
    mock.timers.tick(59_999);
    await Promise.resolve();
    assert.equal(batches.length, 0, 'not before the minute is up');
    mock.timers.tick(1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(batches.length, 1, 'one batch per flush');
    const [batch] = batches;
    assert.deepEqual(batch?.manifests, [
      { repository: 'team/app', digest: A, count: 1000, at: 2_000 },
      { repository: 'team/app', digest: B, count: 1000, at: 2_000 },
    ]);
    assert.deepEqual(batch?.tags, [
      { repository: 'team/app', tag: 'v1', count: 250, at: 1_997 },
      { repository: 'team/app', tag: 'v2', count: 1000, at: 2_000 },
    ]);
    assert.equal(recorder.pending, 0);
    mock.timers.tick(120_000);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(batches.length, 1, 'no pulls, no writes');
  });

  it('keeps the counts of a failed write for the next flush, merged with newer pulls', async () => {
    const { store, batches, state } = fakeStore();
    const recorder = new PullStatsRecorder(store, { logger: silentLogger, now: () => clock });
    recorder.record('team/app', A, 'v1');
    recorder.record('team/app', A, 'v1');
    state.failing = true;
    await recorder.flush();
    assert.equal(batches.length, 0);
    assert.equal(recorder.pending, 2, 'the failed batch waits again');
    recorder.record('team/app', A, null);
    state.failing = false;
    await recorder.flush();
    assert.deepEqual(
      batches[0]?.manifests.map((m) => m.count),
      [3],
    );
    assert.deepEqual(
      batches[0]?.tags.map((t) => t.count),
      [2],
    );
  });

  it('stop writes what is pending, then counts no more', async () => {
    const { store, batches } = fakeStore();
    const recorder = new PullStatsRecorder(store, { logger: silentLogger, now: () => clock });
    recorder.record('team/app', A, null);
    await recorder.stop();
    assert.equal(batches.length, 1);
    recorder.record('team/app', A, null);
    assert.equal(recorder.pending, 0);
    await recorder.stop();
    assert.equal(batches.length, 1);
  });

  it('bounds the entries waiting: pulls of further manifests are dropped and counted', async () => {
    const { store, batches } = fakeStore();
    const recorder = new PullStatsRecorder(store, { logger: silentLogger, maxEntries: 2, now: () => clock });
    recorder.record('r', A, null);
    recorder.record('r', B, null);
    recorder.record('r', A, null);
    recorder.record('r', B, 'v1');
    assert.equal(recorder.pending, 2);
    assert.equal(recorder.dropped, 1);
    await recorder.flush();
    assert.deepEqual(
      batches[0]?.manifests.map((m) => m.count),
      [2, 2],
    );
  });
});
