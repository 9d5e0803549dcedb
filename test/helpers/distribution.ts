/**
 * CNCF Distribution 2.8 (Debian's `docker-registry`) as a reference registry for the end-to-end suite, and the
 * switch that picks which registry the e2e tests drive: `BERTH_E2E_TARGET=distribution` runs them against
 * Distribution (to validate the harness and the clients themselves), anything else (the default) against Berth.
 */
import { spawn } from 'node:child_process';
import bcrypt from 'bcryptjs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBerth } from './server.ts';

export interface RunningRegistry {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT`, the registry host as clients name it. */
  readonly host: string;
  /** Which implementation this is. */
  readonly target: E2ETarget;
  /** Everything the process wrote so far (for failure messages). */
  output(): string;
  /** Stops the process and removes its temp dir. */
  stop(): Promise<void>;
}

export type E2ETarget = 'berth' | 'distribution';

/** The registry the e2e tests run against: `BERTH_E2E_TARGET=distribution` or Berth (the default). */
export const E2E_TARGET: E2ETarget =
  process.env.BERTH_E2E_TARGET === 'distribution' ? 'distribution' : 'berth';

/**
 * A skip reason when the target lacks a feature Distribution 2.8 does not have (referrers API, /v1/search),
 * `false` otherwise. Only Distribution may skip: Berth must implement everything the suite tests.
 */
export function lacksOnTarget(feature: 'referrers' | 'v1-search'): string | false {
  if (E2E_TARGET !== 'distribution') return false;
  return feature === 'referrers'
    ? 'Distribution 2.8 has no referrers API (GET /v2/<name>/referrers/<digest>)'
    : 'Distribution 2.8 has no /v1/search endpoint';
}

/** Starts the selected target on a random loopback port. */
export async function startTarget(): Promise<RunningRegistry> {
  if (E2E_TARGET === 'distribution') return startDistribution();
  const berth = await startBerth();
  return {
    url: berth.url,
    host: berth.host,
    target: 'berth',
    output: () => berth.output(),
    stop: () => berth.dispose(),
  };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
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

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface DistributionOptions {
  /**
   * Require HTTP Basic auth (Distribution's `auth.htpasswd`) with this one user; `GET /v2/` then answers 401
   * without credentials. Absent: no auth.
   */
  readonly htpasswd?: { readonly username: string; readonly password: string };
}

/** Starts `docker-registry serve` with its own config and storage in a temp dir. */
export async function startDistribution(options: DistributionOptions = {}): Promise<RunningRegistry> {
  let lastError: unknown;
  // The port is picked before the process binds it, so another process may take it meanwhile: retry.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startDistributionOnce(options);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

async function startDistributionOnce(options: DistributionOptions): Promise<RunningRegistry> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-e2e-distribution-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const configPath = path.join(dir, 'config.yml');
  const auth: string[] = [];
  let probeAuth: Record<string, string> = {};
  if (options.htpasswd) {
    const { username, password } = options.htpasswd;
    const htpasswdPath = path.join(dir, 'htpasswd');
    // Distribution reads bcrypt entries only; a low cost keeps the start fast.
    await writeFile(htpasswdPath, `${username}:${bcrypt.hashSync(password, 4)}\n`);
    auth.push('auth:', '  htpasswd:', '    realm: distribution', `    path: ${JSON.stringify(htpasswdPath)}`);
    probeAuth = { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
  }
  await writeFile(
    configPath,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(path.join(dir, 'data'))}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${host}`,
      ...auth,
      '',
    ].join('\n'),
  );
  // Distribution reads REGISTRY_<SECTION>_<KEY> overrides from the environment (REGISTRY_AUTH_FILE, set for the
  // containers tools, would mean `auth.file`!), so give it none of those.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const child = spawn('docker-registry', ['serve', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', (err) => {
      out += String(err);
      exited = true;
      resolve();
    });
  });
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`docker-registry exited before answering on ${host}:\n${out}`);
    }
    try {
      const res = await fetch(`${url}/v2/`, { headers: probeAuth, signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer GET /v2/ on ${host} in 15 s:\n${out}`);
    }
    await sleep(100);
  }
  return { url, host, target: 'distribution', output: () => out, stop };
}
