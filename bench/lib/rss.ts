/**
 * Memory and CPU of a registry process during one phase: VmRSS from /proc/<pid>/status sampled every 50 ms, plus
 * VmHWM (the kernel's own peak) after resetting it at the start of the phase by writing `5` to
 * /proc/<pid>/clear_refs (permitted for the process owner and root; when it is not, only the samples count).
 * CPU seconds (utime + stime from /proc/<pid>/stat) are recorded for the results file.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux

export interface PhaseUsage {
  /** Peak resident set in bytes: max(sampled VmRSS, VmHWM when the reset worked). */
  peakRssBytes: number;
  /** Whether VmHWM could be reset for this phase (so peaks between samples are included too). */
  hwmReset: boolean;
  /** RSS when the phase started. */
  startRssBytes: number;
  /** CPU seconds (user + system) the process used during the phase. */
  cpuSeconds: number;
  samples: number;
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return undefined;
  }
}

/** Current VmRSS of a process in bytes (0 when it cannot be read). */
export function currentRss(pid: number): number {
  return (statusKiB(pid, 'VmRSS') ?? 0) * 1024;
}

export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private peakKiB = 0;
  private startKiB = 0;
  private startTicks = 0;
  private hwmReset = false;
  private samples = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 50,
  ) {}

  start(): void {
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.hwmReset = true;
    } catch {
      this.hwmReset = false;
    }
    this.startKiB = statusKiB(this.pid, 'VmRSS') ?? 0;
    this.peakKiB = this.startKiB;
    this.startTicks = cpuTicks(this.pid) ?? 0;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  private sample(): void {
    const kib = statusKiB(this.pid, 'VmRSS');
    if (kib !== undefined) {
      this.samples++;
      if (kib > this.peakKiB) this.peakKiB = kib;
    }
  }

  stop(): PhaseUsage {
    clearInterval(this.timer);
    this.sample();
    let peak = this.peakKiB;
    if (this.hwmReset) peak = Math.max(peak, statusKiB(this.pid, 'VmHWM') ?? 0);
    const ticks = cpuTicks(this.pid) ?? this.startTicks;
    return {
      peakRssBytes: peak * 1024,
      hwmReset: this.hwmReset,
      startRssBytes: this.startKiB * 1024,
      cpuSeconds: (ticks - this.startTicks) / CLOCK_TICKS,
      samples: this.samples,
    };
  }
}

/** Runs `fn` while sampling the process; returns its result and the phase's usage. */
export async function withUsage<T>(
  pid: number,
  fn: () => Promise<T>,
): Promise<{ value: T; usage: PhaseUsage }> {
  const sampler = new RssSampler(pid);
  sampler.start();
  try {
    const value = await fn();
    return { value, usage: sampler.stop() };
  } catch (err) {
    sampler.stop();
    throw err;
  }
}
