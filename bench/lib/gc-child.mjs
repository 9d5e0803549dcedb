/**
 * One garbage collection in a process of its own, as `berth gc` runs it: the compiled build (`dist/`), the
 * configuration from defaults plus `data` and `gc.sweepStorage`, `createServices`, then
 * `services.gc.runHere(...)`. Prints one JSON line: when each phase started (ms since the run began), the
 * run's counters, and the process's peak RSS (VmHWM; getrusage maxRSS too, which Linux carries across execve
 * from the parent, so it is only an upper bound).
 *
 * Plain JavaScript on purpose: no TypeScript loader in the measured process.
 *
 * usage: node gc-child.mjs <dist dir> <data dir> <sweepStorage: true|false>
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [distDir, dataDir, sweep] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(path.join(distDir, file)).href);
const { loadConfig } = await load('config/load.js');
const { createServices } = await load('container.js');

const vmHwmKiB = () => {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : null;
};

const opened = performance.now();
const config = loadConfig({
  env: {},
  overrides: { data: dataDir, 'gc.sweepStorage': sweep === 'true', 'gc.schedule': 'off' },
});
const services = await createServices(config);
const rssBeforeKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
const start = performance.now();
const phases = {};
let run;
try {
  run = await services.gc.runHere({ dryRun: false, trigger: 'cli', requestedBy: null }, (phase) => {
    if (!(phase in phases)) phases[phase] = performance.now() - start;
  });
} finally {
  await services.close();
}
const totalMs = performance.now() - start;
process.stdout.write(
  `${JSON.stringify({
    openMs: start - opened,
    totalMs,
    phases,
    state: run.state,
    error: run.error,
    progress: run.progress,
    rssBeforeKiB,
    maxRssKiB: process.resourceUsage().maxRSS,
    vmHwmKiB: vmHwmKiB(),
  })}\n`,
);
