/**
 * The real `berth` process starting: `--version`, what the "berth ready" line states, the warning for an open
 * registry reachable from other machines, and (below) every way a start can fail: one line on stderr naming the
 * config key, no stack trace, exit code 2.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sleep } from '../helpers/http-client.ts';
import { PROJECT_ROOT, startBerth, type RunningBerth } from '../helpers/server.ts';

const VERSION = (
  JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/** The JSON log lines of `berth` so far. */
function logLines(berth: RunningBerth): Record<string, unknown>[] {
  return berth
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The "berth ready" log line, once it is written (the process logs it right after listening). */
async function readyLine(berth: RunningBerth): Promise<Record<string, unknown>> {
  for (let i = 0; i < 500; i++) {
    const line = logLines(berth).find((l) => l.msg === 'berth ready');
    if (line) return line;
    await sleep(20);
  }
  throw new Error(`no "berth ready" line:\n${berth.output()}`);
}

const OPEN_WARNING = /the registry is open/;

describe('berth start-up', () => {
  it('prints its version with --version', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--version'], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${VERSION}\n`);
  });

  it('states version, auth mode and TLS when ready; no warning on a loopback address', async () => {
    const berth = await startBerth();
    try {
      const ready = await readyLine(berth);
      assert.equal(ready.version, VERSION);
      assert.equal(ready.auth, 'none');
      assert.equal(ready.tls, false);
      assert.equal(ready.listen, '127.0.0.1:0');
      assert.doesNotMatch(berth.output(), OPEN_WARNING);
    } finally {
      await berth.dispose();
    }
  });

  it('warns when an open registry listens on a non-loopback address', async () => {
    const open = await startBerth({ listen: '0.0.0.0:0' });
    try {
      await readyLine(open);
      const warning = logLines(open).find((l) => OPEN_WARNING.test(String(l.msg)));
      assert.ok(warning, `a warning:\n${open.output()}`);
      assert.equal(warning.level, 40);
    } finally {
      await open.dispose();
    }
    const closed = await startBerth({ listen: '0.0.0.0:0', env: { BERTH_AUTH_MODE: 'token' } });
    try {
      assert.equal((await readyLine(closed)).auth, 'token');
      assert.doesNotMatch(closed.output(), OPEN_WARNING);
    } finally {
      await closed.dispose();
    }
  });
});
