/**
 * The rows of the benchmark: what was measured (per repetition and registry), the medians, the
 * Berth/Distribution ratio and the target from the issue, evaluated to met / not met.
 */
import type { RegistryKind } from './registries.ts';
import { median } from './stats.ts';

export type Better = 'higher' | 'lower';

export type Target =
  /** Berth/Distribution >= value */
  | { readonly kind: 'ratio-at-least'; readonly value: number }
  /** Berth/Distribution <= value */
  | { readonly kind: 'ratio-at-most'; readonly value: number }
  /** Berth/Distribution < value */
  | { readonly kind: 'ratio-below'; readonly value: number }
  /** Berth's median < value (row units) */
  | { readonly kind: 'berth-below'; readonly value: number }
  /** Berth's median >= value (row units) */
  | { readonly kind: 'berth-at-least'; readonly value: number; readonly why: string }
  | { readonly kind: 'all'; readonly of: readonly Target[] };

export interface RowSpec {
  readonly id: string;
  /** Workload family (section of the report). */
  readonly family: string;
  readonly label: string;
  readonly unit: string;
  readonly better: Better;
  readonly target?: Target;
  /** A short remark shown in the report. */
  readonly note?: string;
}

export type Status = 'met' | 'not met' | 'no target' | 'not measured';

export interface RunRecord {
  row: string;
  registry: RegistryKind;
  rep: number;
  value?: number;
  error?: string;
  details?: Record<string, unknown>;
}

export interface RowResult extends RowSpec {
  berth: number[];
  distribution: number[];
  berthMedian: number;
  distributionMedian: number;
  /** Berth median / Distribution median. */
  ratio: number;
  targetText: string;
  status: Status;
  errors: string[];
}

export function describeTarget(t: Target, unit: string): string {
  switch (t.kind) {
    case 'ratio-at-least':
      return `>= ${t.value}x`;
    case 'ratio-at-most':
      return `<= ${t.value}x`;
    case 'ratio-below':
      return t.value === 1 ? 'lower than Distribution' : `< ${t.value}x`;
    case 'berth-below':
      return `< ${formatNumber(t.value)} ${unit}`;
    case 'berth-at-least':
      return `>= ${formatNumber(t.value)} ${unit} (${t.why})`;
    case 'all':
      return t.of.map((x) => describeTarget(x, unit)).join(' and ');
  }
}

function meets(t: Target, berth: number, ratio: number): boolean {
  switch (t.kind) {
    case 'ratio-at-least':
      return ratio >= t.value;
    case 'ratio-at-most':
      return ratio <= t.value;
    case 'ratio-below':
      return ratio < t.value;
    case 'berth-below':
      return berth < t.value;
    case 'berth-at-least':
      return berth >= t.value;
    case 'all':
      return t.of.every((x) => meets(x, berth, ratio));
  }
}

function needsRatio(t: Target): boolean {
  if (t.kind === 'all') return t.of.some(needsRatio);
  return t.kind.startsWith('ratio');
}

/** A number with about three significant digits, without exponent notation. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

/** The ratio targets of a target (for display precision and chart ticks). */
export function ratioTargets(t: Target | undefined): number[] {
  if (!t) return [];
  if (t.kind === 'all') return t.of.flatMap(ratioTargets);
  return t.kind.startsWith('ratio') ? [t.value] : [];
}

/** A row's ratio, with a third decimal when two would round onto its target (2.996x is not 3.00x). */
export function formatRowRatio(row: { ratio: number; target?: Target }): string {
  const r = row.ratio;
  if (
    Number.isFinite(r) &&
    r >= 0.1 &&
    r < 10 &&
    ratioTargets(row.target).some((t) => Math.abs(r - t) < 0.005)
  ) {
    return `${r.toFixed(3)}x`;
  }
  return formatRatio(r);
}

export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return '—';
  if (r >= 10) return `${r.toFixed(1)}x`;
  if (r >= 0.1) return `${r.toFixed(2)}x`;
  return `${r.toPrecision(2)}x`;
}

export class Recorder {
  private readonly specs = new Map<string, RowSpec>();
  readonly runs: RunRecord[] = [];

  define(spec: RowSpec): void {
    if (!this.specs.has(spec.id)) this.specs.set(spec.id, spec);
  }

  add(
    row: string,
    registry: RegistryKind,
    rep: number,
    value: number,
    details?: Record<string, unknown>,
  ): void {
    if (!this.specs.has(row)) throw new Error(`undefined row ${row}`);
    this.runs.push({ row, registry, rep, value, details });
  }

  fail(row: string, registry: RegistryKind, rep: number, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.runs.push({ row, registry, rep, error: message });
  }

  get errors(): RunRecord[] {
    return this.runs.filter((r) => r.error !== undefined);
  }

  results(): RowResult[] {
    return [...this.specs.values()].map((spec) => {
      const values = (kind: RegistryKind): number[] =>
        this.runs
          .filter((r) => r.row === spec.id && r.registry === kind && r.value !== undefined)
          .map((r) => r.value as number);
      const berth = values('berth');
      const distribution = values('distribution');
      const berthMedian = median(berth);
      const distributionMedian = median(distribution);
      const ratio = berthMedian / distributionMedian;
      const errors = this.runs
        .filter((r) => r.row === spec.id && r.error !== undefined)
        .map((r) => `${r.registry} rep ${r.rep + 1}: ${r.error}`);
      let status: Status;
      if (!spec.target) status = 'no target';
      else if (!Number.isFinite(berthMedian) || (needsRatio(spec.target) && !Number.isFinite(ratio))) {
        status = 'not measured';
      } else status = meets(spec.target, berthMedian, ratio) ? 'met' : 'not met';
      return {
        ...spec,
        berth,
        distribution,
        berthMedian,
        distributionMedian,
        ratio,
        targetText: spec.target ? describeTarget(spec.target, spec.unit) : '',
        status,
        errors,
      };
    });
  }
}
