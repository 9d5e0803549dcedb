/**
 * The job runner and its store on SQLite (a database file, one connection per runner as separate processes
 * would have) and PostgreSQL (a fresh schema per test, one pool per runner): exclusive claiming across runners,
 * lease renewal and recovery, backoff and RetryLaterError, dead-lettering, redrive and cancel, dedupe, schedules
 * firing once per slot across three runners, and retention. Waits poll with deadlines; clocks that matter are
 * injected.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { PermanentJobError, RetryLaterError } from '../../src/jobs/job.ts';
import type { JobContext } from '../../src/jobs/job.ts';
import { JobRunner, type JobRunnerOptions } from '../../src/jobs/runner.ts';
import { slotKey } from '../../src/jobs/schedule.ts';
import { backoffDelay } from '../../src/jobs/backoff.ts';
import { createPostgresStore, createSqliteStore } from '../../src/metadata/dialects.ts';
import type { JobRecord, JobStore } from '../../src/metadata/job-store.ts';
import type { KyselyMetadataStore } from '../../src/metadata/kysely-store.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';

/** One database for a test; `open()` gives another connection (pool) to it. */
interface Database {
  open(): KyselyMetadataStore;
  cleanup(): Promise<void>;
}

const postgresSkip = await postgresSkipReason();
const admin = postgresSkip === false ? new pg.Pool({ connectionString: POSTGRES_URL, max: 2 }) : undefined;
after(() => admin?.end());

const BACKENDS: { name: string; skip: string | false; create: () => Promise<Database> }[] = [
  {
    name: 'SQLite',
    skip: false,
    create: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'berth-jobs-'));
      // One connection for every runner: better-sqlite3 is synchronous, so a second connection in this process
      // waiting for the write lock would block the event loop that the holder needs to commit (separate
      // processes, each with its own connection, queue on the lock instead).
      const store = createSqliteStore(join(dir, 'berth.db'));
      return { open: () => store, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'PostgreSQL',
    skip: postgresSkip,
    create: async () => {
      const schema = `berth_test_${randomBytes(6).toString('hex')}`;
      return {
        open: () => createPostgresStore(POSTGRES_URL, { schema, maxConnections: 4 }),
        cleanup: async () => void (await admin?.query(`drop schema if exists "${schema}" cascade`)),
      };
    },
  },
];

/** Polls `check` until it returns a value other than undefined/false, or fails after `ms`. */
async function until<T>(
  what: string,
  check: () => Promise<T> | T,
  ms = 15_000,
): Promise<Exclude<T, false | undefined>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as Exclude<T, false | undefined>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** `store` with its `claim` calls counted (to wait until a runner has polled a number of times). */
function counted(store: JobStore): { store: JobStore; claims: () => number } {
  let claims = 0;
  const wrapped = Object.create(store) as JobStore;
  wrapped.claim = async (input) => {
    claims++;
    return store.claim(input);
  };
  return { store: wrapped, claims: () => claims };
}

/** A mutable clock for runners. */
function clock(start: number): {
  now: () => number;
  set: (t: number) => void;
  advance: (ms: number) => void;
} {
  let t = start;
  return { now: () => t, set: (v) => (t = v), advance: (ms) => (t += ms) };
}

for (const backend of BACKENDS) {
  describe(`job runner on ${backend.name}`, { skip: backend.skip }, () => {
    let db: Database;
    let stores: KyselyMetadataStore[];
    let runners: JobRunner[];

    /** A new connection to this test's database (closed after the test). */
    const connect = (): JobStore => {
      const store = db.open();
      stores.push(store);
      return store.jobStore();
    };
    const runner = (options: JobRunnerOptions = {}, store: JobStore = connect()): JobRunner => {
      const r = new JobRunner(store, { pollIntervalMs: 20, stopTimeoutMs: 200, ...options });
      runners.push(r);
      return r;
    };
    const job = async (id: number): Promise<JobRecord> => {
      const record = await stores[0]!.jobStore().get(id);
      assert.ok(record, `job ${id} exists`);
      return record;
    };

    beforeEach(async () => {
      db = await backend.create();
      stores = [];
      runners = [];
      const first = db.open();
      stores.push(first);
      await first.migrate();
    });
    afterEach(async () => {
      for (const r of runners) await r.stop();
      for (const s of stores) await s.close();
      await db.cleanup();
    });

    it('runs each job exactly once across three runners, never two at once', async () => {
      const runs = new Map<number, number>();
      const active = new Set<number>();
      const overlaps: number[] = [];
      const handler = async (_payload: unknown, context: JobContext): Promise<void> => {
        if (active.has(context.id)) overlaps.push(context.id);
        active.add(context.id);
        runs.set(context.id, (runs.get(context.id) ?? 0) + 1);
        await sleep(1 + Math.floor(Math.random() * 10));
        active.delete(context.id);
      };
      const fleet = [runner({ concurrency: 3 }), runner({ concurrency: 3 }), runner({ concurrency: 3 })];
      for (const r of fleet) {
        r.register('work', handler);
        r.start();
      }
      const ids: number[] = [];
      for (let i = 0; i < 60; i++) {
        const id = await fleet[i % 3]!.enqueue('work', { i });
        assert.ok(id !== null);
        ids.push(id);
      }
      const store = stores[0]!.jobStore();
      await until('every job to succeed', async () => {
        const counts = await store.counts();
        return counts.length === 1 && counts[0]?.state === 'succeeded' && counts[0].count === 60;
      });
      assert.deepEqual(overlaps, []);
      assert.deepEqual(
        ids.map((id) => runs.get(id)),
        ids.map(() => 1),
      );
      const attempts = new Set((await store.list({ limit: 100 })).items.map((j) => j.attempts));
      assert.deepEqual([...attempts], [1]);
    });

    it('keeps a job while its lease is renewed, and recovers it once a dead runner lets the lease expire', async () => {
      const leaseDurationMs = 300;
      const started: string[] = [];
      // Runner A renews nothing: it stands for a process that froze or died with the job claimed.
      const aStore = connect();
      const frozenStore = Object.create(aStore) as JobStore;
      frozenStore.renew = async () => true;
      frozenStore.claim = async (input) => (started.includes('a:1') ? [] : aStore.claim(input));
      let release: (() => void) | undefined;
      const a = runner({ instanceId: 'a', leaseDurationMs }, frozenStore);
      a.register('work', async (_p, context) => {
        started.push(`a:${context.attempt}`);
        await new Promise<void>((resolve) => (release = resolve));
      });
      // Runner H holds its job well past the lease while B polls: renewals keep it.
      const h = runner({ instanceId: 'h', leaseDurationMs });
      let holdRelease: (() => void) | undefined;
      h.register('hold', async () => {
        started.push('h');
        await new Promise<void>((resolve) => (holdRelease = resolve));
      });
      const b = counted(connect());
      const bRunner = runner({ instanceId: 'b', leaseDurationMs }, b.store);
      bRunner.register('work', async (_p, context) => void started.push(`b:${context.attempt}`));
      bRunner.register('hold', async () => void started.push('b:hold'));

      a.start();
      h.start();
      const id = await a.enqueue('work', null);
      const held = await h.enqueue('hold', null);
      assert.ok(id !== null && held !== null);
      await until('runner a to start the job', () => started.includes('a:1'));
      await until('runner h to start its job', () => started.includes('h'));
      bRunner.start();

      await until('runner b to take the expired job over', async () => (await job(id)).state === 'succeeded');
      const recovered = await job(id);
      assert.equal(recovered.leaseOwner, 'b');
      assert.equal(recovered.attempts, 2);
      assert.ok(started.includes('b:2'));

      // B has polled for well over a lease duration: h's renewed job stayed h's.
      const from = b.claims();
      await until('runner b to poll for more than a lease', () => b.claims() > from + 20);
      const kept = await job(held);
      assert.equal(kept.state, 'running');
      assert.equal(kept.leaseOwner, 'h');
      assert.ok(!started.includes('b:hold'));
      holdRelease?.();
      await until('h to finish its job', async () => (await job(held)).state === 'succeeded');

      // A finishing late changes nothing: the job is b's.
      release?.();
      await a.stop();
      assert.equal((await job(id)).state, 'succeeded');
      assert.equal((await job(id)).leaseOwner, 'b');
    });

    it('aborts the handler of a cancelled running job and drops its outcome', async () => {
      const r = runner({ leaseDurationMs: 150 });
      let signal: AbortSignal | undefined;
      r.register('work', async (_p, context) => {
        signal = context.signal;
        await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve()));
      });
      r.start();
      const id = await r.enqueue('work', null);
      assert.ok(id !== null);
      await until('the job to start', () => signal !== undefined);
      const cancelled = await r.cancel(id);
      assert.equal(cancelled?.changed, true);
      await until('the handler to be aborted', () => signal?.aborted === true);
      await r.stop();
      const after = await job(id);
      assert.equal(after.state, 'cancelled');
      assert.notEqual(after.finishedAt, null);
    });

    it('on stop, lets handlers finish within the bound, then aborts the rest and gives their jobs back', async () => {
      const r = runner({ stopTimeoutMs: 100 });
      const started = new Set<string>();
      r.register(
        'work',
        async (payload, context) => {
          started.add(String(payload));
          if (payload === 'quick') return;
          // 'stubborn' runs until aborted.
          await new Promise<void>((_resolve, reject) =>
            context.signal.addEventListener('abort', () => reject(new Error('aborted'))),
          );
        },
        { concurrency: 2 },
      );
      r.start();
      const stubborn = await r.enqueue('work', 'stubborn');
      const quick = await r.enqueue('work', 'quick');
      assert.ok(stubborn !== null && quick !== null);
      await until('both jobs to start', () => started.size === 2);
      await until('the quick job to succeed', async () => (await job(quick)).state === 'succeeded');
      await r.stop();
      const back = await job(stubborn);
      assert.equal(back.state, 'queued', 'given back');
      assert.equal(back.attempts, 0, 'the interrupted attempt does not count');
      assert.equal(back.lastError, null);
      assert.equal(back.leaseOwner, null);
    });

    it('backs off exponentially with jitter, and honours RetryLaterError', async () => {
      const t = clock(1_000_000_000_000);
      const polls = counted(connect());
      const r = runner({ now: t.now, backoff: { baseMs: 1_000, maxMs: 60_000 } }, polls.store);
      const retryAt = new Date(t.now() + 3_600_000);
      const outcomes: (Error | null)[] = [
        new Error('one'),
        new Error('two'),
        new RetryLaterError('later', retryAt),
        null,
      ];
      const attempts: number[] = [];
      r.register(
        'work',
        async (_p, context) => {
          attempts.push(context.attempt);
          const outcome = outcomes[context.attempt - 1];
          if (outcome) throw outcome;
        },
        { maxAttempts: 5 },
      );
      r.start();
      const id = await r.enqueue('work', null);
      assert.ok(id !== null);
      const failedAt = async (attempt: number): Promise<JobRecord> =>
        until(`attempt ${attempt} to fail`, async () => {
          const j = await job(id);
          return j.state === 'queued' && j.attempts === attempt ? j : undefined;
        });

      let j = await failedAt(1);
      assert.ok(j.runAt - t.now() >= 500 && j.runAt - t.now() <= 1_000, `first delay ${j.runAt - t.now()}`);
      assert.equal(j.lastError, 'Error: one');
      t.set(j.runAt);
      j = await failedAt(2);
      assert.ok(
        j.runAt - t.now() >= 1_000 && j.runAt - t.now() <= 2_000,
        `second delay ${j.runAt - t.now()}`,
      );
      t.set(j.runAt);
      j = await failedAt(3);
      assert.equal(j.runAt, retryAt.getTime());
      assert.equal(j.lastError, 'RetryLaterError: later');
      t.set(retryAt.getTime() - 1);
      const from = polls.claims();
      await until('the runner to poll a few times', () => polls.claims() > from + 5);
      assert.equal((await job(id)).state, 'queued', 'not run before retryAt');
      t.set(retryAt.getTime());
      await until('the job to succeed', async () => (await job(id)).state === 'succeeded');
      assert.deepEqual(attempts, [1, 2, 3, 4]);
      assert.equal((await job(id)).attempts, 4);
    });

    it('dead-letters after maxAttempts, and at once on PermanentJobError', async () => {
      const r = runner({ backoff: { baseMs: 1, maxMs: 1 } });
      r.register(
        'flaky',
        async () => {
          throw new Error('still failing');
        },
        { maxAttempts: 3 },
      );
      r.register('broken', async () => {
        throw new PermanentJobError('cannot ever work');
      });
      r.start();
      const flaky = await r.enqueue('flaky', { n: 1 });
      const broken = await r.enqueue('broken', null);
      const custom = await r.enqueue('flaky', null, { maxAttempts: 1 });
      assert.ok(flaky !== null && broken !== null && custom !== null);
      for (const [id, attempts, error] of [
        [flaky, 3, 'Error: still failing'],
        [broken, 1, 'PermanentJobError: cannot ever work'],
        [custom, 1, 'Error: still failing'],
      ] as const) {
        const dead = await until(`job ${id} to die`, async () => {
          const j = await job(id);
          return j.state === 'dead' ? j : undefined;
        });
        assert.equal(dead.attempts, attempts);
        assert.equal(dead.lastError, error);
        assert.notEqual(dead.finishedAt, null);
      }
      assert.deepEqual((await job(flaky)).payload, { n: 1 });
    });

    it('redrives dead and cancelled jobs, and cancels queued ones', async () => {
      let fail = true;
      const r = runner();
      r.register(
        'work',
        async () => {
          if (fail) throw new PermanentJobError('not yet');
        },
        { maxAttempts: 2 },
      );
      r.start();
      const id = await r.enqueue('work', null);
      assert.ok(id !== null);
      await until('the job to die', async () => (await job(id)).state === 'dead');
      assert.equal((await r.cancel(id))?.changed, true, 'a dead job can be cancelled');
      fail = false;
      const retried = await r.retry(id);
      assert.equal(retried?.changed, true);
      assert.equal(retried?.job.state, 'queued');
      assert.equal(retried?.job.attempts, 0);
      await until('the redriven job to succeed', async () => (await job(id)).state === 'succeeded');
      assert.equal((await job(id)).attempts, 1);

      const again = await r.retry(id);
      assert.equal(again?.changed, false, 'a succeeded job is not redriven');
      assert.equal(again?.job.state, 'succeeded');
      assert.equal((await r.cancel(id))?.changed, false, 'a succeeded job is not cancelled');

      const later = await r.enqueue('work', null, { runAt: new Date(Date.now() + 3_600_000) });
      assert.ok(later !== null);
      const cancelled = await r.cancel(later);
      assert.equal(cancelled?.changed, true);
      assert.equal(cancelled?.job.state, 'cancelled');
      assert.equal(await r.retry(999_999), null);
      assert.equal(await r.cancel(999_999), null);
      assert.equal(await r.get(999_999), null);
    });

    it('deduplicates enqueues by key within a queue, also when racing', async () => {
      const r = runner();
      const first = await r.enqueue('a', { v: 1 }, { dedupeKey: 'k' });
      assert.ok(first !== null);
      assert.equal(await r.enqueue('a', { v: 2 }, { dedupeKey: 'k' }), null);
      assert.ok((await r.enqueue('b', null, { dedupeKey: 'k' })) !== null, 'another queue has its own keys');
      assert.ok((await r.enqueue('a', null)) !== null);
      assert.ok((await r.enqueue('a', null)) !== null, 'no key: no dedupe');
      const racers = [connect(), connect(), connect()];
      const ids = await Promise.all(
        racers.flatMap((s) =>
          [1, 2, 3].map((n) =>
            s.enqueue({ queue: 'a', payload: n, dedupeKey: 'race', runAt: 0, maxAttempts: 1, now: 0 }),
          ),
        ),
      );
      assert.equal(ids.filter((id) => id !== null).length, 1);
      assert.deepEqual((await job(first)).payload, { v: 1 });
      assert.deepEqual(await r.counts(), [
        { queue: 'a', state: 'queued', count: 4 },
        { queue: 'b', state: 'queued', count: 1 },
      ]);
      const page = await r.list({ queue: 'a', limit: 2 });
      assert.equal(page.items.length, 2);
      assert.equal(page.hasMore, true);
      const rest = await r.list({ queue: 'a', limit: 10, after: page.items[1]!.id });
      assert.equal(rest.items.length, 2);
      assert.ok(rest.items.every((j) => j.id < page.items[1]!.id));
      assert.equal((await r.list({ state: 'succeeded', limit: 10 })).items.length, 0);
    });

    it('enqueues many jobs in one call, skipping the keys the queue already has (also within the batch)', async () => {
      const r = runner();
      assert.ok((await r.enqueue('m', 'old', { dedupeKey: 'k1' })) !== null);
      const added = await r.enqueueMany('m', [
        { payload: 'dup', options: { dedupeKey: 'k1' } },
        { payload: 'new', options: { dedupeKey: 'k2' } },
        { payload: 'twice', options: { dedupeKey: 'k3' } },
        { payload: 'again', options: { dedupeKey: 'k3' } },
        { payload: 'free' },
        { payload: 'later', options: { runAt: new Date(Date.now() + 60_000), maxAttempts: 2 } },
      ]);
      assert.equal(added, 4);
      assert.equal(await r.enqueueMany('m', []), 0);
      const jobs = (await r.list({ queue: 'm', limit: 10 })).items;
      assert.deepEqual(jobs.map((j) => j.payload).sort(), ['free', 'later', 'new', 'old', 'twice']);
      const later = jobs.find((j) => j.payload === 'later');
      assert.equal(later?.maxAttempts, 2);
      assert.ok((later?.runAt ?? 0) > Date.now() + 30_000);
    });

    it('fires each slot of a schedule once across three runners, and only the latest missed slot', async () => {
      const t = clock(Date.UTC(2026, 0, 1, 0, 30));
      const ran: string[] = [];
      const fleet = [0, 1, 2].map(() => {
        const c = counted(connect());
        const r = runner({ now: t.now }, c.store);
        r.register('every', async (payload) => void ran.push(`every:${String(payload)}`));
        r.register('cron', async () => void ran.push('cron'));
        r.schedule('ten-seconds', { everyMs: 10_000 }, 'every', 'x');
        r.schedule('hourly', '0 * * * *', 'cron');
        return { r, claims: c.claims };
      });
      for (const { r } of fleet) r.start();
      const store = stores[0]!.jobStore();
      const keys = async (): Promise<string[]> =>
        (await store.list({ limit: 100 })).items.map((j) => `${j.dedupeKey}:${j.state}`).sort();
      /** Waits until every runner has polled a few times with the current clock. */
      const settle = async (): Promise<void> => {
        const from = fleet.map((f) => f.claims());
        await until('every runner to poll', () => fleet.every((f, i) => f.claims() > from[i]! + 3));
        await until('no job left', async () => (await store.counts()).every((c) => c.state === 'succeeded'));
      };
      const start = t.now();
      await settle();
      assert.deepEqual(await keys(), [
        `${slotKey('hourly', Date.UTC(2026, 0, 1, 0))}:succeeded`,
        `${slotKey('ten-seconds', start)}:succeeded`,
      ]);
      t.advance(10_000);
      await settle();
      t.advance(95_000); // nine slots later: the ones in between are not replayed
      await settle();
      t.set(Date.UTC(2026, 0, 1, 1) + 1);
      await settle();
      assert.deepEqual(
        await keys(),
        [
          `${slotKey('hourly', Date.UTC(2026, 0, 1, 0))}:succeeded`,
          `${slotKey('hourly', Date.UTC(2026, 0, 1, 1))}:succeeded`,
          `${slotKey('ten-seconds', Date.UTC(2026, 0, 1, 1))}:succeeded`,
          `${slotKey('ten-seconds', start)}:succeeded`,
          `${slotKey('ten-seconds', start + 10_000)}:succeeded`,
          `${slotKey('ten-seconds', start + 100_000)}:succeeded`,
        ].sort(),
      );
      assert.equal(ran.filter((r) => r === 'cron').length, 2);
      assert.equal(ran.filter((r) => r === 'every:x').length, 4);
    });

    it('deletes finished jobs after the retention, except the current schedule slots', async () => {
      const t = clock(Date.UTC(2026, 0, 1, 0, 0, 5));
      const r = runner({ now: t.now, retentionMs: 1_000, cleanupIntervalMs: 0 });
      r.register('work', async () => undefined);
      r.schedule('slow', { everyMs: 60_000 }, 'work');
      const dead = await r.enqueue('dead', null);
      assert.ok(dead !== null);
      await stores[0]!.jobStore().cancel(dead, 0);
      await r.retry(dead); // queued again, in a queue nobody runs
      const plain = await r.enqueue('work', null);
      assert.ok(plain !== null);
      r.start();
      await until('both jobs to run', async () =>
        (await r.counts()).some((c) => c.queue === 'work' && c.state === 'succeeded' && c.count === 2),
      );
      t.advance(2_000);
      await until('the plain job to be deleted', async () => (await r.get(plain)) === null);
      const left = (await r.list({ limit: 10 })).items.map((j) => j.dedupeKey ?? j.queue).sort();
      assert.deepEqual(left, ['dead', slotKey('slow', Date.UTC(2026, 0, 1))]);
    });

    it('computes backoff bounds', () => {
      assert.equal(
        backoffDelay(1, { baseMs: 1000 }, () => 0),
        500,
      );
      assert.equal(
        backoffDelay(1, { baseMs: 1000 }, () => 1),
        1000,
      );
      assert.equal(
        backoffDelay(4, { baseMs: 1000 }, () => 1),
        8000,
      );
      assert.equal(
        backoffDelay(40, { baseMs: 1000, maxMs: 5000 }, () => 1),
        5000,
      );
    });
  });
}
