/**
 * What `npm start` runs: the TypeScript build in dist/ (`tsc -p tsconfig.build.json`) started with the node
 * command of package.json's `start` script. The other end-to-end tests run the sources through tsx; this one
 * makes sure the build emits a registry that starts, finds its resources and serves a push and a pull.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import ts from 'typescript';
import { PROJECT_ROOT, startBerth, type RunningBerth } from '../helpers/server.ts';

function build(): Promise<void> {
  return new Promise((resolve, reject) => {
    const tsc = path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`tsc exited with ${code}:\n${out}`)),
    );
  });
}

describe('the compiled build (npm start)', { timeout: 180_000 }, () => {
  let berth: RunningBerth;

  before(async () => {
    await build();
    berth = await startBerth({ compiled: true });
  });
  after(async () => berth?.dispose());

  it('leaves the contract suites (test code) out of the build', () => {
    // The program tsc builds from tsconfig.build.json, imports included: what dist/ would hold.
    const config = ts.getParsedCommandLineOfConfigFile(
      path.join(PROJECT_ROOT, 'tsconfig.build.json'),
      {},
      { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(String(d.messageText)) },
    );
    assert.ok(config);
    const program = ts.createProgram(config.fileNames, config.options);
    const sources = program
      .getSourceFiles()
      .map((f) => path.relative(PROJECT_ROOT, f.fileName))
      .filter((f) => f.startsWith(`src${path.sep}`));
    assert.ok(sources.includes(path.join('src', 'main.ts')));
    assert.deepEqual(
      sources.filter((f) => f.split(path.sep).includes('testing')),
      [],
    );
  });

  it('runs from dist/ with the start script’s flags', () => {
    const args = berth.process.spawnargs.join(' ');
    assert.match(args, /dist\/main\.js serve/);
    assert.doesNotMatch(args, /tsx/);
  });

  it('answers the API base and serves its OpenAPI document (a file found relative to the build)', async () => {
    assert.equal((await fetch(`${berth.url}/v2/`)).status, 200);
    const res = await fetch(`${berth.url}/api/v1/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(String(((await res.json()) as { openapi?: string }).openapi), /^3\./);
  });

  it('takes a push and serves it back whole and by range', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 5);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const put = await fetch(`${berth.url}/v2/compiled/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: data,
    });
    assert.equal(put.status, 201);
    const whole = await fetch(`${berth.url}/v2/compiled/app/blobs/${digest}`);
    assert.equal(whole.status, 200);
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(data));
    const part = await fetch(`${berth.url}/v2/compiled/app/blobs/${digest}`, {
      headers: { Range: 'bytes=1048570-2097160' },
    });
    assert.equal(part.status, 206);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(1048570, 2097161)));
  });

  it('stops gracefully on SIGTERM', async () => {
    await berth.stop();
    assert.equal(berth.process.exitCode, 0);
  });
});
