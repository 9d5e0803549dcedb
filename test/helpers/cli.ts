/** Runs the `berth` command (the sources, through tsx) as the CLI tests do, and checks its outcome. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PROJECT_ROOT } from './server.ts';

export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `berth ARGS` (with `--data DATA` appended unless `noData`), feeding `input` to stdin, without the
 * variables a developer's shell may set (`BERTH_ADMIN_PASSWORD`, `BERTH_CONFIG`). Killed after 60 s.
 */
export function runBerth(
  data: string,
  args: string[],
  options: { input?: string; noData?: boolean } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.BERTH_ADMIN_PASSWORD;
    delete env.BERTH_CONFIG;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/main.ts', ...args, ...(options.noData ? [] : ['--data', data])],
      { cwd: PROJECT_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Asserts exit 0; returns stdout. */
export function succeeded(r: Run, what: string): string {
  assert.equal(r.status, 0, `${what}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
