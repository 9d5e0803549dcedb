/**
 * What the Prometheus instrumentation costs on the hottest path: manifest GET by tag under load (as in
 * `manifests.ts`: autocannon, keep-alive connections, bodies checked) against two Berth instances started side by
 * side, one with the default configuration (metrics on) and one with `BERTH_METRICS_ENABLED=false`. The load
 * alternates between them in short rounds (on, off, off, on, ...) so that drift of a busy machine falls on both,
 * and each instance's value is the median of its rounds. The overhead row is the median over rounds of
 * `(off - on) / off` in percent, each round's two loads being back to back (less exposed to a busy machine's
 * drift than the ratio of the two medians); the target (at most 5 %) is absolute, Berth against itself (no
 * Distribution in this family).
 */
import autocannon from 'autocannon';
import type { BenchContext } from '../lib/context.ts';
import { MEDIA_TYPE_OCI_MANIFEST } from '../lib/data.ts';
import { startBerth, type Registry } from '../lib/registries.ts';
import type { RowSpec } from '../lib/results.ts';
import { median } from '../lib/stats.ts';
import { seedImage, type SeededManifest } from './manifests.ts';

const ON: RowSpec = {
  id: 'metrics.manifest-get.on',
  family: 'metrics',
  label: 'manifest GET with /metrics instrumentation on: requests/s',
  unit: 'req/s',
  better: 'higher',
};
const OFF: RowSpec = {
  id: 'metrics.manifest-get.off',
  family: 'metrics',
  label: 'manifest GET with /metrics instrumentation off: requests/s',
  unit: 'req/s',
  better: 'higher',
};
const OVERHEAD: RowSpec = {
  id: 'metrics.manifest-get.overhead',
  family: 'metrics',
  label: 'manifest GET with /metrics instrumentation on vs off: throughput lost',
  unit: '%',
  better: 'lower',
  target: { kind: 'berth-below', value: 5 },
  note: 'Berth against itself, alternating rounds',
};

/** Rounds per instance and repetition (each `loadSeconds` long). */
const ROUNDS = { quick: 2, full: 5 };

export async function metricsOverheadWorkload(ctx: BenchContext): Promise<void> {
  const { options } = ctx;
  for (const spec of [ON, OFF, OVERHEAD]) ctx.rec.define(spec);
  for (let rep = 0; rep < options.reps; rep++) {
    const started: Registry[] = [];
    try {
      const on = await startBerth();
      started.push(on);
      const off = await startBerth([], { BERTH_METRICS_ENABLED: 'false' });
      started.push(off);
      await assertMetrics(on, true);
      await assertMetrics(off, false);
      const seeded = { on: await seedImage(on), off: await seedImage(off) };
      // A short warm-up of each, so that neither round one pays for the JIT.
      await load(on, seeded.on, 1, options.connections);
      await load(off, seeded.off, 1, options.connections);
      const rates = { on: [] as number[], off: [] as number[] };
      const rounds = options.quick ? ROUNDS.quick : ROUNDS.full;
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
        for (const which of order) {
          ctx.log(
            `  manifest GET x${options.connections} for ${options.loadSeconds}s, metrics ${which} (rep ${rep + 1}, round ${round + 1})`,
          );
          const reg = which === 'on' ? on : off;
          rates[which].push(await load(reg, seeded[which], options.loadSeconds, options.connections));
        }
      }
      const overheads = rates.on.map((on, i) => {
        const off = rates.off[i] as number;
        return ((off - on) / off) * 100;
      });
      ctx.rec.add(ON.id, 'berth', rep, median(rates.on), { rounds: rates.on });
      ctx.rec.add(OFF.id, 'berth', rep, median(rates.off), { rounds: rates.off });
      ctx.rec.add(OVERHEAD.id, 'berth', rep, median(overheads), { rounds: overheads });
    } catch (err) {
      for (const spec of [ON, OFF, OVERHEAD]) ctx.rec.fail(spec.id, 'berth', rep, err);
    } finally {
      for (const reg of started) await reg.stop();
    }
  }
}

/** Checks that `/metrics` is served (`enabled`) or absent, so the comparison compares what it claims. */
async function assertMetrics(reg: Registry, enabled: boolean): Promise<void> {
  const res = await reg.client.request('GET', '/metrics');
  const expected = enabled ? 200 : 404;
  if (res.status !== expected) {
    throw new Error(
      `GET /metrics on the metrics-${enabled ? 'on' : 'off'} instance: ${res.status}, expected ${expected}`,
    );
  }
}

/** Requests/s of manifest GETs by tag during `seconds`; any non-2xx, error, timeout or wrong body fails. */
async function load(
  reg: Registry,
  manifest: SeededManifest,
  seconds: number,
  connections: number,
): Promise<number> {
  const result = await autocannon({
    url: `${reg.url}/v2/${manifest.repo}/manifests/latest`,
    method: 'GET',
    connections,
    duration: seconds,
    headers: { accept: MEDIA_TYPE_OCI_MANIFEST },
    expectBody: manifest.bytes.toString('utf8'),
    timeout: 10,
  });
  const problems = [
    result.non2xx ? `${result.non2xx} non-2xx responses` : '',
    result.errors ? `${result.errors} errors` : '',
    result.timeouts ? `${result.timeouts} timeouts` : '',
    result.mismatches ? `${result.mismatches} bodies differing from the manifest` : '',
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`manifest GET under load: ${problems.join(', ')}`);
  return result.requests.total / result.duration;
}
