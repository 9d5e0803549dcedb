/**
 * Starting and stopping the two registries under test, each on a random loopback port with its own temp dir:
 *
 * - Berth exactly as `npm start` runs it (`buildBerth`, then the `start` script's node command) with its embedded default
 *   configuration (no config file, no BERTH_* variables): only `--listen 127.0.0.1:0` and `--data <temp dir>`.
 *   That means its production logging defaults, `log.level: info` and `log.accessLog: true`.
 * - CNCF Distribution 2.8.2 (`docker-registry serve`) with the configuration Debian ships in
 *   /etc/docker/registry/config.yml, minus `auth` (Berth's default is open too), with the root directory and
 *   address changed. Its logging is therefore its production default as well: level info, access log on.
 *
 * Both write their logs to a file in their temp dir (as a service manager would collect them), never to a pipe
 * the harness would have to drain while it is busy generating load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryClient } from './http.ts';
import { removeTree, run } from './proc.ts';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export type RegistryKind = 'berth' | 'distribution';
export const REGISTRY_KINDS: readonly RegistryKind[] = ['berth', 'distribution'];
export const LABELS: Record<RegistryKind, string> = { berth: 'Berth', distribution: 'Distribution' };

export interface Registry {
  readonly kind: RegistryKind;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT` */
  readonly host: string;
  readonly pid: number;
  readonly dir: string;
  readonly logFile: string;
  /** Keep-alive client for control requests (seeding, verification). */
  readonly client: RegistryClient;
  /** Bytes of log written so far. */
  logBytes(): number;
  /** The last part of the log (for error messages). */
  logTail(): string;
  /** Stops the process (SIGTERM, then SIGKILL after 10 s) and removes the temp dir. */
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The environment without settings either registry reads (BERTH_*, REGISTRY_*). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('BERTH_') && !k.startsWith('REGISTRY_')),
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function readTail(file: string, bytes = 8192): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.length > bytes ? text.slice(-bytes) : text;
  } catch {
    return '';
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

interface Spawned {
  child: ChildProcess;
  exited: Promise<void>;
  isExited(): boolean;
}

function spawnLogged(
  command: string,
  args: string[],
  logFile: string,
  cwd: string,
  env: Record<string, string> = {},
): Spawned {
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, { cwd, env: { ...cleanEnv(), ...env }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let done = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      done = true;
      resolve();
    });
    child.once('error', () => {
      done = true;
      resolve();
    });
  });
  return { child, exited, isExited: () => done };
}

async function waitReady(url: string, spawned: Spawned, logFile: string, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (spawned.isExited()) throw new Error(`${what} exited before answering:\n${readTail(logFile)}`);
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`${what} did not answer GET /v2/ in 30 s:\n${readTail(logFile)}`);
    await sleep(50);
  }
}

/** Running registries, so an interrupted run can stop them (see stopAllRegistries). */
const running = new Set<() => Promise<void>>();

/** Stops every registry still running (on SIGINT/SIGTERM of the harness). */
export async function stopAllRegistries(): Promise<void> {
  await Promise.all([...running].map((stop) => stop()));
}

function makeStop(spawned: Spawned, dir: string, client: RegistryClient): () => Promise<void> {
  const stop = async (): Promise<void> => {
    running.delete(stop);
    client.close();
    if (!spawned.isExited()) {
      spawned.child.kill('SIGTERM');
      const timer = setTimeout(() => spawned.child.kill('SIGKILL'), 10_000);
      await spawned.exited;
      clearTimeout(timer);
    }
    await removeTree(dir);
  };
  running.add(stop);
  return stop;
}

/** A started registry, answering at `url`. */
function registryOf(
  kind: RegistryKind,
  url: string,
  spawned: Spawned,
  dir: string,
  logFile: string,
): Registry {
  const client = new RegistryClient(url);
  return {
    kind,
    url,
    host: new URL(url).host,
    pid: spawned.child.pid as number,
    dir,
    logFile,
    client,
    logBytes: () => fileSize(logFile),
    logTail: () => readTail(logFile),
    stop: makeStop(spawned, dir, client),
  };
}

/** Kills a registry that failed to start and removes its temp dir. */
async function discard(spawned: Spawned, dir: string): Promise<void> {
  spawned.child.kill('SIGKILL');
  await spawned.exited;
  await rm(dir, { recursive: true, force: true });
}

/** Compiles Berth to dist/ as `npm start` does before it starts (`tsc -p tsconfig.build.json`). */
export async function buildBerth(): Promise<void> {
  await run(
    process.execPath,
    [path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: PROJECT_ROOT,
    },
  );
}

/** package.json's `start` script. */
export function npmStartScript(): string {
  const pkg = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  return pkg.scripts.start.trim();
}

/**
 * The node arguments of package.json's `start` script (`node [flags] dist/main.js serve`), so the benchmark runs
 * Berth with exactly the runtime flags `npm start` uses.
 */
function npmStartArgs(): string[] {
  const [command, ...args] = npmStartScript().split(/\s+/);
  if (command !== 'node') throw new Error(`npm start runs ${command}, expected node`);
  return args;
}

/**
 * Berth with its default configuration (built by `buildBerth`) on a random loopback port; `nodeFlags` go before
 * the start script's own (e.g. `--cpu-prof` for the profiler); `env` adds `BERTH_*` settings (a comparison of
 * one setting, e.g. `BERTH_METRICS_ENABLED=false`).
 */
export async function startBerth(
  nodeFlags: readonly string[] = [],
  env: Record<string, string> = {},
): Promise<Registry> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-bench-berth-'));
  const logFile = path.join(dir, 'berth.log');
  const spawned = spawnLogged(
    process.execPath,
    [...nodeFlags, ...npmStartArgs(), '--listen', '127.0.0.1:0', '--data', path.join(dir, 'data')],
    logFile,
    PROJECT_ROOT,
    env,
  );
  const fail = async (err: unknown): Promise<never> => {
    await discard(spawned, dir);
    throw err;
  };
  // The port is chosen by the kernel (listen on :0); fastify logs `Server listening at http://127.0.0.1:PORT`.
  let url: string | undefined;
  const deadline = Date.now() + 30_000;
  while (url === undefined) {
    const m = /listening at (https?:\/\/[^"\s]+)/.exec(readTail(logFile, 1 << 20));
    if (m) url = m[1];
    else if (spawned.isExited())
      return fail(new Error(`berth exited before listening:\n${readTail(logFile)}`));
    else if (Date.now() > deadline)
      return fail(new Error(`berth did not listen in 30 s:\n${readTail(logFile)}`));
    else await sleep(50);
  }
  try {
    await waitReady(url, spawned, logFile, 'berth');
  } catch (err) {
    return fail(err);
  }
  return registryOf('berth', url, spawned, dir, logFile);
}

/**
 * Debian's /etc/docker/registry/config.yml (2.8.2+ds1), without `auth`, on our port and directory; `extra` lines
 * are appended (e.g. a `proxy:` section).
 */
export function distributionConfig(
  rootDirectory: string,
  addr: string,
  extra: readonly string[] = [],
): string {
  return [
    'version: 0.1',
    'log:',
    '  fields:',
    '    service: registry',
    'storage:',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(rootDirectory)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${addr}`,
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
    'health:',
    '  storagedriver:',
    '    enabled: true',
    '    interval: 10s',
    '    threshold: 3',
    ...extra,
    '',
  ].join('\n');
}

/**
 * CNCF Distribution (`docker-registry serve`) with a filesystem config in a temp dir; `extraConfig` lines are
 * appended to the configuration.
 */
export async function startDistribution(extraConfig: readonly string[] = []): Promise<Registry> {
  let lastError: unknown;
  // The port is picked before the process binds it, so another process may take it meanwhile: retry.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-bench-distribution-'));
    const host = `127.0.0.1:${await freePort()}`;
    const url = `http://${host}`;
    const configPath = path.join(dir, 'config.yml');
    const logFile = path.join(dir, 'registry.log');
    await writeFile(configPath, distributionConfig(path.join(dir, 'data'), host, extraConfig));
    const spawned = spawnLogged('docker-registry', ['serve', configPath], logFile, dir);
    try {
      await waitReady(url, spawned, logFile, 'docker-registry');
    } catch (err) {
      lastError = err;
      await discard(spawned, dir);
      continue;
    }
    return registryOf('distribution', url, spawned, dir, logFile);
  }
  throw lastError;
}

export function startRegistry(kind: RegistryKind): Promise<Registry> {
  return kind === 'berth' ? startBerth() : startDistribution();
}

/** The Distribution configuration the bench uses, for the report. */
export const DISTRIBUTION_CONFIG_SUMMARY = distributionConfig('<temp dir>/data', '127.0.0.1:<random port>');
