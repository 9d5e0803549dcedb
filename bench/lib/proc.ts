/** Running external commands: `sync`, `cat`, `skopeo`, `apt-get`. */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall-clock seconds from spawn to exit. */
  seconds: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve instead of rejecting on a non-zero exit. */
  allowFailure?: boolean;
  /** Kill the command after this many ms. */
  timeoutMs?: number;
}

/** Runs a command to completion (stdout/stderr kept, tail-truncated to 64 KiB each). */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const keep = (s: string): string => (s.length > 65_536 ? s.slice(-65_536) : s);
    child.stdout.on('data', (d: Buffer) => (stdout = keep(stdout + d.toString())));
    child.stderr.on('data', (d: Buffer) => (stderr = keep(stderr + d.toString())));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr, seconds: (performance.now() - start) / 1000 };
      if (code !== 0 && !options.allowFailure) {
        reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${stderr || stdout}`));
      } else {
        resolve(result);
      }
    });
  });
}

/** The absolute path of an executable on $PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Flushes dirty pages so one run's writeback does not slow down the next run. */
export async function syncDisks(): Promise<void> {
  await run('sync', [], { allowFailure: true });
}

/**
 * Installs a Debian package when its command is missing (`apt-get install -y`, with one `apt-get update` retry).
 * Returns whether the command is available afterwards.
 */
export async function ensureDebianPackage(
  command: string,
  pkg: string,
  log: (msg: string) => void,
): Promise<boolean> {
  if (which(command)) return true;
  log(`${command} not found: installing Debian package ${pkg} with apt-get`);
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
  const apt = async (...args: string[]): Promise<boolean> => {
    const [cmd, ...rest] = [...sudo, 'apt-get', ...args];
    try {
      const r = await run(cmd as string, rest, {
        allowFailure: true,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      if (r.code !== 0) log(`apt-get ${args.join(' ')} failed:\n${r.stderr.slice(-2000)}`);
      return r.code === 0;
    } catch (err) {
      log(`apt-get ${args.join(' ')} failed: ${String(err)}`);
      return false;
    }
  };
  if (!(await apt('install', '-y', '--no-install-recommends', pkg))) {
    if (await apt('update')) await apt('install', '-y', '--no-install-recommends', pkg);
  }
  return which(command) !== undefined;
}

/**
 * Removes a directory tree with `rm -rf` (fs.rm walks a tree of a million files, as Distribution leaves after
 * 100,000 repositories, in JavaScript: many minutes and over a GiB of memory), falling back to fs.rm.
 */
export async function removeTree(dir: string): Promise<void> {
  try {
    await run('rm', ['-rf', '--one-file-system', '--', dir]);
  } catch {
    await rm(dir, { recursive: true, force: true });
  }
}
