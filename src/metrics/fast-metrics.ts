/**
 * Counters and histograms for the request hot path. prom-client's own check and hash the label values on every
 * `inc` and `observe`, even through `labels(...)` children; these keep plain numbers in per-series children made
 * once, and turn them into samples only when scraped. They register in a prom-client `Registry` like its own
 * metrics (same text exposition), but cannot be set, reset or removed.
 */
import type { Metric, Registry } from 'prom-client';

interface Sample {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName?: string;
}

/** What a prom-client `Registry` reads of a metric when it renders the exposition. */
interface ScrapedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] };
}

/** One series of a `FastCounter`. */
export interface CounterSeries {
  /** Adds `n` (default 1; never negative). */
  inc(n?: number): void;
}

/** One series of a `FastHistogram`. */
export interface HistogramSeries {
  /** Records one observation of `value`. */
  observe(value: number): void;
}

abstract class FastMetric<S> implements ScrapedMetric {
  abstract readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum' as const;
  private readonly entries = new Map<string, { labels: Record<string, string>; series: S }>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /**
   * The series of these label values (in `labelNames` order), made on first use. Callers keep the result: this
   * lookup is what the hot path avoids.
   */
  protected seriesOf(values: readonly string[]): S {
    if (values.length !== this.labelNames.length) {
      throw new TypeError(
        `${this.name}: ${this.labelNames.length} label values expected, got ${values.length}`,
      );
    }
    const key = values.join('\u0000');
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i] as string));
      entry = { labels, series: this.create() };
      this.entries.set(key, entry);
    }
    return entry.series;
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    const values: Sample[] = [];
    for (const { labels, series } of this.entries.values()) this.samples(labels, series, values);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  protected abstract create(): S;
  protected abstract samples(labels: Record<string, string>, series: S, into: Sample[]): void;
}

class CounterChild implements CounterSeries {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export class FastCounter extends FastMetric<CounterChild> {
  readonly type = 'counter' as const;

  /** The series of these label values (none for an unlabelled counter). */
  labels(...values: string[]): CounterSeries {
    return this.seriesOf(values);
  }

  protected create(): CounterChild {
    return new CounterChild();
  }

  protected samples(labels: Record<string, string>, series: CounterChild, into: Sample[]): void {
    into.push({ labels, value: series.value });
  }
}

class HistogramChild implements HistogramSeries {
  /** Observations per bucket, not cumulative (the last slot is above the highest bound). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

export class FastHistogram extends FastMetric<HistogramChild> {
  readonly type = 'histogram' as const;

  constructor(
    registry: Registry,
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly bounds: readonly number[],
  ) {
    super(registry, name, help, labelNames);
  }

  /** The series of these label values. */
  labels(...values: string[]): HistogramSeries {
    return this.seriesOf(values);
  }

  protected create(): HistogramChild {
    return new HistogramChild(this.bounds);
  }

  protected samples(labels: Record<string, string>, series: HistogramChild, into: Sample[]): void {
    let cumulative = 0;
    this.bounds.forEach((le, i) => {
      cumulative += series.counts[i] as number;
      into.push({ labels: { le, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
    });
    into.push({ labels: { le: '+Inf', ...labels }, value: series.count, metricName: `${this.name}_bucket` });
    into.push({ labels, value: series.sum, metricName: `${this.name}_sum` });
    into.push({ labels, value: series.count, metricName: `${this.name}_count` });
  }
}
