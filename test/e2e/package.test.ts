/**
 * The published npm package: `npm pack` (whose `prepack` script builds dist/) gives a tarball that, installed
 * with production dependencies only (`npm install --omit=dev`, as `npm install -g berth` does), serves the
 * registry from dist/ with no TypeScript tooling. Needs the npm registry for the dependencies.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeTree, run, tempDir } from '../helpers/clients.ts';
import { PROJECT_ROOT, startBerth, type RunningBerth } from '../helpers/server.ts';

describe('the npm package (npm pack, then npm install --omit=dev)', { timeout: 900_000 }, () => {
  let dir: string;
  let files: string[];
  let installed: string;
  let berth: RunningBerth | undefined;

  before(async () => {
    dir = await tempDir('package');
    const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], {
      cwd: PROJECT_ROOT,
      timeoutMs: 300_000,
    });
    // npm prints the prepack script's output before the JSON array.
    const [report] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('\n[') + 1)) as {
      filename: string;
      files: { path: string }[];
    }[];
    assert.ok(report);
    files = report.files.map((f) => f.path);
    const app = path.join(dir, 'app');
    await mkdir(app);
    await writeFile(path.join(app, 'package.json'), '{ "private": true }\n');
    await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', path.join(dir, report.filename)], {
      cwd: app,
      timeoutMs: 600_000,
    });
    installed = path.join(app, 'node_modules');
  });
  after(async () => {
    await berth?.dispose();
    if (dir) await removeTree(dir);
  });

  it('holds the build, the command and the OpenAPI document, not the sources or tests', () => {
    for (const f of ['bin/berth.js', 'dist/main.js', 'docs/api/openapi.yaml', 'package.json']) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    const stray = files.filter((f) => /^(src|test|bench|\.ci)\//.test(f) || f === 'dist/.tsbuildinfo');
    assert.deepEqual(stray, []);
  });

  it('installs without the development tools', () => {
    assert.ok(existsSync(path.join(installed, 'berth', 'dist', 'main.js')));
    for (const dev of ['tsx', 'typescript', '@types/pg', 'eslint']) {
      assert.ok(!existsSync(path.join(installed, dev)), `${dev} is not installed`);
    }
  });

  it('serves /v2/, a blob push and pull, and its OpenAPI document', async () => {
    berth = await startBerth({
      command: { args: [path.join(installed, '.bin', 'berth'), 'serve'], cwd: path.dirname(installed) },
    });
    assert.equal((await fetch(`${berth.url}/v2/`)).status, 200);
    const data = randomBytes(1024 * 1024 + 3);
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const put = await fetch(`${berth.url}/v2/packaged/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: data,
    });
    assert.equal(put.status, 201);
    const got = await fetch(`${berth.url}/v2/packaged/app/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(data));
    const openapi = await fetch(`${berth.url}/api/v1/openapi.json`);
    assert.equal(openapi.status, 200);
    assert.match(String(((await openapi.json()) as { openapi?: string }).openapi), /^3\./);
    await berth.stop();
    assert.equal(berth.process.exitCode, 0, 'stops gracefully on SIGTERM');
  });

  it('says what is wrong, instead of looking for tsx, when an installation lacks dist/', async () => {
    const broken = path.join(dir, 'broken');
    await mkdir(path.join(broken, 'bin'), { recursive: true });
    await copyFile(path.join(installed, 'berth', 'bin', 'berth.js'), path.join(broken, 'bin', 'berth.js'));
    await copyFile(path.join(installed, 'berth', 'package.json'), path.join(broken, 'package.json'));
    const result = await run(process.execPath, [path.join(broken, 'bin', 'berth.js'), 'serve'], {
      allowFailure: true,
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no dist\/main\.js/);
    assert.doesNotMatch(result.stderr, /tsx|ERR_MODULE_NOT_FOUND/);
  });
});
