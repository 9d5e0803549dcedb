/**
 * What webhooks cost a push: two Berth instances side by side, one with three webhook endpoints subscribed to
 * manifest pushes (a receiver in this process answering 204, so every push is really delivered three times
 * while the load runs) and one with none. Each round pushes small images for `loadSeconds` from `WORKERS`
 * concurrent clients (a fresh config blob, then the manifest by tag); the load alternates between the instances
 * (with, without, without, with, ...) so that a busy machine's drift falls on both. Rows: pushes per second and
 * the median manifest PUT latency of each, and the overhead of each as the median over back-to-back round pairs
 * (target: at most 5 %, Berth against itself). Background jobs yield to requests while the process is saturated
 * (`src/jobs/request-pressure.ts`), so deliveries trail the load: after each round with webhooks the run waits
 * until every push of it has reached all three endpoints (not timed as load: the next round starts on an idle
 * machine), and reports that wait as the drain row. A delivery missing after 60 s fails the run.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createSqliteStore } from '../../src/metadata/dialects.ts';
import { generateSecret } from '../../src/webhooks/signing.ts';
import type { BenchContext } from '../lib/context.ts';
import { configOnlyManifest, pushSmall, putManifest } from '../lib/oci.ts';
import { startBerth, type Registry } from '../lib/registries.ts';
import type { RowSpec } from '../lib/results.ts';
import { median } from '../lib/stats.ts';

const row = (id: string, label: string, unit: string, better: 'higher' | 'lower'): RowSpec => ({
  id: `webhooks.${id}`,
  family: 'webhooks',
  label,
  unit,
  better,
});
const PUSH_WITH = row(
  'push.with',
  'push with three webhook endpoints subscribed: images/s',
  'images/s',
  'higher',
);
const PUSH_WITHOUT = row('push.without', 'push with no webhook endpoint: images/s', 'images/s', 'higher');
const PUSH_OVERHEAD: RowSpec = {
  ...row('push.overhead', 'push with three webhook endpoints vs none: throughput lost', '%', 'lower'),
  target: { kind: 'berth-below', value: 5 },
  note: 'Berth against itself, alternating rounds',
};
const PUT_WITH = row(
  'manifest-put.with',
  'manifest PUT with three webhook endpoints: median latency',
  'ms',
  'lower',
);
const PUT_WITHOUT = row(
  'manifest-put.without',
  'manifest PUT with no webhook endpoint: median latency',
  'ms',
  'lower',
);
const PUT_OVERHEAD: RowSpec = {
  ...row(
    'manifest-put.overhead',
    'manifest PUT with three webhook endpoints vs none: latency added',
    '%',
    'lower',
  ),
  target: { kind: 'berth-below', value: 5 },
  note: 'Berth against itself, alternating rounds',
};
const DRAIN = row(
  'delivery-drain',
  'webhook deliveries still due when a round of push load ends: seconds until all delivered',
  's',
  'lower',
);
const ROWS = [PUSH_WITH, PUSH_WITHOUT, PUSH_OVERHEAD, PUT_WITH, PUT_WITHOUT, PUT_OVERHEAD, DRAIN];

const WORKERS = 8;
const ENDPOINTS = 3;
const ROUNDS = { quick: 2, full: 5 };

export interface Receiver {
  url: string;
  received: number;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 answering every request 204, counting them. */
export async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = { url: '', received: 0, close: () => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      receiver.received++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  receiver.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return receiver;
}

/** Subscribes `ENDPOINTS` endpoints (both formats) of `receiver` to the instance's manifest pushes. */
export async function subscribe(reg: Registry, receiver: Receiver): Promise<void> {
  const store = createSqliteStore(path.join(reg.dir, 'data', 'berth.db'));
  try {
    for (let i = 0; i < ENDPOINTS; i++) {
      await store.webhookStore().create({
        name: `bench-${i}`,
        namespace: null,
        url: `${receiver.url}/hook/${i}`,
        format: i % 2 === 0 ? 'distribution' : 'cloudevents',
        events: ['manifest.pushed'],
        repositoryGlob: '**',
        tagGlob: '*',
        includePulls: false,
        headers: {},
        secret: generateSecret(),
        createdBy: null,
      });
    }
  } finally {
    await store.close();
  }
}

/** Pushes images for `seconds` from `WORKERS` clients; returns images/s and every manifest PUT's latency (ms). */
export async function pushRound(
  reg: Registry,
  seconds: number,
  round: string,
): Promise<{ rate: number; puts: number[] }> {
  const puts: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  let pushed = 0;
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      const repo = `bench/webhooks-${w}`;
      for (let i = 0; performance.now() < end; i++) {
        const config = randomBytes(256);
        const digest = await pushSmall(reg.client, repo, config);
        const manifest = configOnlyManifest({ digest, size: config.length });
        const t0 = performance.now();
        await putManifest(reg.client, repo, `${round}-${i}`, manifest);
        puts.push(performance.now() - t0);
        pushed++;
      }
    }),
  );
  return { rate: pushed / ((performance.now() - start) / 1000), puts };
}

export async function webhooksOverheadWorkload(ctx: BenchContext): Promise<void> {
  const { options } = ctx;
  for (const spec of ROWS) ctx.rec.define(spec);
  for (let rep = 0; rep < options.reps; rep++) {
    const started: Registry[] = [];
    const receiver = await startReceiver();
    try {
      const env = { BERTH_WEBHOOKS_ALLOWED_HOSTS: '127.0.0.1' };
      const withHooks = await startBerth([], env);
      started.push(withHooks);
      const without = await startBerth([], env);
      started.push(without);
      await subscribe(withHooks, receiver);
      // A short warm-up of each, so that neither round one pays for the JIT (nor for creating repositories).
      let pushesWith = (await pushRound(withHooks, 1, `warm${rep}`)).puts.length;
      await pushRound(without, 1, `warm${rep}`);
      const drains: number[] = [];
      /** Waits until every push so far reached every endpoint; returns the seconds it took. */
      const drain = async (): Promise<number> => {
        const started = performance.now();
        const expected = pushesWith * ENDPOINTS;
        const deadline = Date.now() + 60_000;
        while (receiver.received < expected && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
        if (receiver.received !== expected) {
          throw new Error(`the receiver got ${receiver.received} deliveries, expected ${expected}`);
        }
        return (performance.now() - started) / 1000;
      };
      await drain();
      const rates = { with: [] as number[], without: [] as number[] };
      const latencies = { with: [] as number[], without: [] as number[] };
      const rounds = options.quick ? ROUNDS.quick : ROUNDS.full;
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? (['with', 'without'] as const) : (['without', 'with'] as const);
        for (const which of order) {
          ctx.log(
            `  push x${WORKERS} for ${options.loadSeconds}s, ${which} webhooks (rep ${rep + 1}, round ${round + 1})`,
          );
          const reg = which === 'with' ? withHooks : without;
          const result = await pushRound(reg, options.loadSeconds, `r${rep}-${round}`);
          if (which === 'with') {
            pushesWith += result.puts.length;
            drains.push(await drain());
          }
          rates[which].push(result.rate);
          latencies[which].push(median(result.puts));
        }
      }
      const lost = rates.with.map(
        (w, i) => (((rates.without[i] as number) - w) / (rates.without[i] as number)) * 100,
      );
      const added = latencies.with.map(
        (w, i) => ((w - (latencies.without[i] as number)) / (latencies.without[i] as number)) * 100,
      );
      ctx.rec.add(PUSH_WITH.id, 'berth', rep, median(rates.with), { rounds: rates.with });
      ctx.rec.add(PUSH_WITHOUT.id, 'berth', rep, median(rates.without), { rounds: rates.without });
      ctx.rec.add(PUSH_OVERHEAD.id, 'berth', rep, median(lost), { rounds: lost });
      ctx.rec.add(PUT_WITH.id, 'berth', rep, median(latencies.with), { rounds: latencies.with });
      ctx.rec.add(PUT_WITHOUT.id, 'berth', rep, median(latencies.without), { rounds: latencies.without });
      ctx.rec.add(PUT_OVERHEAD.id, 'berth', rep, median(added), { rounds: added });
      ctx.rec.add(DRAIN.id, 'berth', rep, median(drains), { rounds: drains });
    } catch (err) {
      for (const spec of ROWS) ctx.rec.fail(spec.id, 'berth', rep, err);
    } finally {
      for (const reg of started) await reg.stop();
      await receiver.close();
    }
  }
}
