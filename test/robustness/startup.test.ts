/**
 * The real `berth` process starting: `--version`, what the "berth ready" line states, the warning for an open
 * registry reachable from other machines, and (below) every way a start can fail: one line on stderr naming the
 * config key, no stack trace, exit code 2.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
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
      // The services log through the process's logger too: here, that nobody can administer the registry.
      const noAdmin = logLines(closed).find((l) => /no administrator exists/.test(String(l.msg)));
      assert.equal(noAdmin?.level, 40, `the services' warning in:\n${closed.output()}`);
    } finally {
      await closed.dispose();
    }
  });
});

/** Runs `berth serve` with `args` and `env` to its exit (it must exit: a start that fails). */
function serveUntilExit(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`berth serve ${args.join(' ')} did not exit within 30 s:\n${stdout}${stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

describe('berth start-up failures: one line naming the key, exit code 2', () => {
  let work: string;
  let data: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'berth-startup-'));
    data = path.join(work, 'data');
    await mkdir(data);
  });
  after(() => rm(work, { recursive: true, force: true }));

  /** Starts `berth serve` on a loopback port with `data` unless `args` say otherwise; checks the failure. */
  async function refused(args: readonly string[], env: Record<string, string>, line: RegExp): Promise<void> {
    const r = await serveUntilExit(['--listen', '127.0.0.1:0', '--data', data, ...args], env);
    assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
    assert.equal(r.stderr.split('\n').length, 2, `one line on stderr: ${r.stderr}`);
    assert.match(r.stderr, line);
    assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, 'no stack trace');
    assert.doesNotMatch(r.stdout, /berth ready/);
  }

  it('a port in use', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    try {
      await refused(
        ['--listen', `127.0.0.1:${port}`],
        {},
        new RegExp(`^berth: config key listen: 127\\.0\\.0\\.1:${port} is already in use\n$`),
      );
    } finally {
      holder.close();
    }
  });

  it('a port out of range', async () => {
    await refused(
      ['--listen', '127.0.0.1:99999'],
      {},
      /^berth: config key listen: the port must be between 0 and 65535\n$/,
    );
  });

  it('a data path that is a file', async () => {
    const file = path.join(work, 'a-file');
    await writeFile(file, 'not a directory');
    await refused(
      ['--data', file],
      {},
      /^berth: config key data: cannot open the SQLite database .*a-file\/berth\.db: /,
    );
  });

  it('a database that does not open: SQLite', async () => {
    const garbage = path.join(work, 'garbage.db');
    await writeFile(garbage, 'this is not an SQLite database, not even close to one. '.repeat(100));
    await refused(
      [],
      { BERTH_METADATA_SQLITE_PATH: garbage },
      /^berth: config key metadata\.sqlite\.path: cannot open the SQLite database .*garbage\.db: file is not a database\n$/,
    );
  });

  it('a database that does not open: PostgreSQL', async () => {
    await refused(
      [],
      {
        BERTH_METADATA_DRIVER: 'postgres',
        BERTH_METADATA_POSTGRES_URL: 'postgres://berth:secret@127.0.0.1:1/berth',
      },
      /^berth: config key metadata\.postgres\.url: cannot connect to PostgreSQL: .*ECONNREFUSED/,
    );
  });

  it('a missing htpasswd file', async () => {
    const missing = path.join(work, 'no-such-htpasswd');
    await refused(
      [],
      { BERTH_AUTH_MODE: 'basic', BERTH_AUTH_HTPASSWD_PATH: missing },
      /^berth: config key auth\.htpasswd\.path: cannot read htpasswd file .*no-such-htpasswd: ENOENT/,
    );
  });

  it('storage that takes no writes', async () => {
    const file = path.join(work, 'blobs-file');
    await writeFile(file, 'x');
    await refused(
      [],
      { BERTH_STORAGE_FILESYSTEM_ROOT: path.join(file, 'blobs') },
      /^berth: config key storage\.filesystem\.root: cannot write to the filesystem storage at .*blobs-file\/blobs: ENOTDIR/,
    );
  });

  it('a trusted proxy that is not an address or CIDR range', async () => {
    await refused(
      [],
      { BERTH_HTTP_TRUSTED_PROXIES: '10.0.0.1,10.0.0.0/33' },
      /^berth: config key http\.trustedProxies\.1: "10\.0\.0\.0\/33" is not an IP address or CIDR range/,
    );
  });
});
