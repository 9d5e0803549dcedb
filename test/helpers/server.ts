/**
 * Starts a real Berth process (`berth serve`) on a random loopback port for end-to-end tests, with its own data
 * directory. The process prints fastify's `Server listening at <url>` log line, which is how we learn the port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface RunningBerth {
  /** `http://127.0.0.1:PORT` (`https://` when TLS is configured) */
  readonly url: string;
  /** `127.0.0.1:PORT`, the registry host as clients name it. */
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly process: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Graceful stop (SIGTERM), waits for exit. */
  stop(): Promise<void>;
  /** SIGKILL, waits for exit. */
  kill(): Promise<void>;
  /** Stops and removes the data directory (unless it was given by the caller). */
  dispose(): Promise<void>;
}

export interface StartOptions {
  /** Reuse a data directory (e.g. after a kill); a fresh temp dir when absent. */
  dataDir?: string;
  /** Extra environment (e.g. BERTH_* overrides). */
  env?: Record<string, string>;
  /** Extra CLI arguments after `serve`. */
  args?: string[];
  /** Listen address; `127.0.0.1:0` by default. */
  listen?: string;
  /**
   * Run the compiled build in dist/ with the node command of package.json's `start` script (what `npm start` runs
   * after building) instead of the TypeScript sources through tsx. The caller builds first (`buildDist`).
   */
  compiled?: boolean;
  /**
   * The node arguments that run `berth serve` (e.g. an installed package's `bin/berth.js` and `serve`), in place of
   * the sources or the build of this checkout; `cwd` is then the working directory.
   */
  command?: { args: string[]; cwd: string };
}

/** The node arguments of package.json's `start` script, e.g. `['--max-semi-space-size=8', 'dist/main.js', 'serve']`. */
function npmStartArgs(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const [command, ...args] = pkg.scripts.start.trim().split(/\s+/);
  if (command !== 'node') throw new Error(`npm start runs ${command}, expected node`);
  return args;
}

export async function startBerth(options: StartOptions = {}): Promise<RunningBerth> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'berth-e2e-')));
  const child = spawn(
    process.execPath,
    [
      ...(options.command?.args ??
        (options.compiled
          ? npmStartArgs()
          : ['--import', 'tsx', path.join(PROJECT_ROOT, 'src', 'main.ts'), 'serve'])),
      '--listen',
      options.listen ?? '127.0.0.1:0',
      '--data',
      dataDir,
      ...(options.args ?? []),
    ],
    {
      cwd: options.command?.cwd ?? PROJECT_ROOT,
      env: { ...process.env, BERTH_LOG_LEVEL: 'info', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`berth did not start in 30 s:\n${out}`)), 30_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening at (https?:\/\/[^"\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`berth exited with ${code} before listening:\n${out}`));
    });
  });
  const u = new URL(url);
  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return {
    url,
    host: u.host,
    port: Number(u.port),
    dataDir,
    process: child,
    output: () => out,
    stop: () => waitExit('SIGTERM'),
    kill: () => waitExit('SIGKILL'),
    dispose: async () => {
      await waitExit('SIGTERM');
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
