/**
 * The hot-path counters and histograms (src/metrics/fast-metrics.ts) render the same text exposition as
 * prom-client's own: cumulative buckets with `le`, `+Inf`, `_sum` and `_count`, one series per label values.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../src/metrics/fast-metrics.ts';

describe('fast metrics', () => {
  it('a histogram renders exactly as prom-client renders the same observations', async () => {
    const bounds = [0.01, 0.1, 1];
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new FastHistogram(ours, 'x_seconds', 'help text', ['op'], bounds);
    const reference = new Histogram({
      name: 'x_seconds',
      help: 'help text',
      labelNames: ['op'],
      buckets: bounds,
      registers: [theirs],
    });
    const observations: [string, number][] = [
      ['read', 0.005],
      ['read', 0.01], // on a bound: counted in it (le means <=)
      ['read', 0.5],
      ['write', 7],
      ['read', 0.05],
    ];
    const read = fast.labels('read');
    assert.equal(fast.labels('read'), read, 'one series per label values');
    for (const [op, v] of observations) {
      fast.labels(op).observe(v);
      reference.labels(op).observe(v);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('a counter sums its increments per series and rejects a wrong number of label values', async () => {
    const registry = new Registry();
    const c = new FastCounter(registry, 'y_total', 'help', ['a', 'b']);
    c.labels('1', '2').inc();
    c.labels('1', '2').inc(4);
    c.labels('1', '3').inc();
    const text = await registry.metrics();
    assert.match(text, /^y_total\{a="1",b="2"\} 5$/m);
    assert.match(text, /^y_total\{a="1",b="3"\} 1$/m);
    assert.match(text, /^# TYPE y_total counter$/m);
    assert.throws(() => c.labels('1'), TypeError);
  });
});
