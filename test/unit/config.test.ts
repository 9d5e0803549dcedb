import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configLeaves } from '../../src/config/leaves.ts';
import { ConfigError, loadConfig, NON_CONFIG_VARIABLES } from '../../src/config/load.ts';
import { parseListen } from '../../src/cli/serve.ts';
import { reachableAddress } from '../../src/config/listen.ts';
import { PROJECT_ROOT } from '../helpers/server.ts';

/** Runs `berth serve` on a free port with `env` added to the environment, to its exit (a start that fails). */
function serveWith(env: Record<string, string>): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--listen', '127.0.0.1:0'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('configuration', () => {
  it('has the embedded default when nothing is given', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.listen, '0.0.0.0:5000');
    assert.equal(c.data, path.resolve('./data'));
    assert.equal(c.storage.driver, 'filesystem');
    assert.equal(c.metadata.driver, 'sqlite');
    assert.equal(c.uploads.purgeAfter, 24 * 3600 * 1000);
  });

  it('layers file < environment < flags', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-config-'));
    const file = path.join(dir, 'berth.yml');
    await writeFile(
      file,
      'listen: 127.0.0.1:6000\nregistry:\n  deletes: false\nuploads:\n  purgeAfter: 2h\nlog:\n  level: warn\n',
    );
    const c = loadConfig({
      file,
      env: {
        BERTH_LOG_LEVEL: 'error',
        BERTH_UPLOADS_PURGE_AFTER: '90',
        BERTH_PUBLIC_URL: 'https://reg.example.com',
      },
      overrides: { listen: '127.0.0.1:7000' },
    });
    assert.equal(c.listen, '127.0.0.1:7000');
    assert.equal(c.registry.deletes, false);
    assert.equal(c.log.level, 'error');
    assert.equal(c.uploads.purgeAfter, 90_000);
    assert.equal(c.publicUrl, 'https://reg.example.com');
  });

  it('names the offending key for bad values, unknown keys and bad YAML', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-config-'));
    const bad = async (text: string, pattern: RegExp): Promise<void> => {
      const file = path.join(dir, `c${Math.random()}.yml`);
      await writeFile(file, text);
      assert.throws(
        () => loadConfig({ file, env: {} }),
        (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
      );
    };
    await bad('registry:\n  deletes: maybe\n', /registry\.deletes/);
    await bad('storage:\n  filesystem:\n    rot: /x\n', /unknown config key storage\.filesystem\.rot/);
    await bad('uploads:\n  purgeAfter: 3 weeks\n', /uploads\.purgeAfter/);
    await bad('listen: nowhere\n', /config key listen/);
    await bad('listen: [1, 2\n', /not valid YAML/);
    assert.throws(
      () => loadConfig({ env: { BERTH_REGISTRY_MAX_MANIFEST_SIZE: 'lots' } }),
      /registry\.maxManifestSize/,
    );
    assert.throws(
      () => loadConfig({ file: path.join(dir, 'missing.yml'), env: {} }),
      /cannot read config file/,
    );
  });

  it('reads http.trustedProxies from YAML or a comma-separated variable, and refuses what is not an address or CIDR', async () => {
    assert.deepEqual(loadConfig({ env: {} }).http.trustedProxies, []);
    assert.deepEqual(
      loadConfig({ env: { BERTH_HTTP_TRUSTED_PROXIES: ' 10.0.0.0/8, 192.0.2.7,2001:db8::/32 ,' } }).http
        .trustedProxies,
      ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32'],
    );
    assert.deepEqual(loadConfig({ env: { BERTH_HTTP_TRUSTED_PROXIES: '' } }).http.trustedProxies, []);
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-config-'));
    const file = path.join(dir, 'berth.yml');
    await writeFile(file, 'http:\n  trustedProxies: [::1, fd00::/8]\n');
    assert.deepEqual(loadConfig({ file, env: {} }).http.trustedProxies, ['::1', 'fd00::/8']);
    for (const bad of [
      '10.0.0.0/33',
      'proxy.example.com',
      '10.0.0.0/0',
      '2001:db8::/129',
      'fe80::1%eth0',
      '10.0.0/8',
    ]) {
      assert.throws(
        () => loadConfig({ env: { BERTH_HTTP_TRUSTED_PROXIES: `192.0.2.7,${bad}` } }),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.message.includes('config key http.trustedProxies.1:') &&
          e.message.includes(JSON.stringify(bad)),
        bad,
      );
    }
  });

  it('refuses unknown BERTH_* variables and YAML keys, suggesting the closest known name', async () => {
    const refused = (env: NodeJS.ProcessEnv, message: string): void =>
      assert.throws(
        () => loadConfig({ env }),
        (e: unknown) => e instanceof ConfigError && e.message === message,
      );
    refused(
      { BERTH_AUTH_MOD: 'token' },
      'unknown environment variable BERTH_AUTH_MOD (did you mean BERTH_AUTH_MODE?)',
    );
    refused(
      { BERTH_STORAGE_S3_BUKET: 'b', BERTH_LISTEN: '127.0.0.1:5000', BERTH_WHATEVER: 'x' },
      'unknown environment variable BERTH_STORAGE_S3_BUKET (did you mean BERTH_STORAGE_S3_BUCKET?); ' +
        'unknown environment variable BERTH_WHATEVER',
    );
    refused(
      { BERTH_ADMIN_PASWORD: 'x' },
      'unknown environment variable BERTH_ADMIN_PASWORD (did you mean BERTH_ADMIN_PASSWORD?)',
    );
    // Other variables, and BERTH_ in any other case or position, are none of Berth's business.
    assert.equal(
      loadConfig({ env: { berth_auth_mod: 'x', MY_BERTH_X: 'y', PATH: '/bin' } }).auth.mode,
      'none',
    );
    // The variables that are not keys but are read elsewhere are accepted.
    const others = Object.fromEntries(NON_CONFIG_VARIABLES.map((name) => [name, '1']));
    assert.equal(loadConfig({ env: { ...others, BERTH_AUTH_MODE: 'token' } }).auth.mode, 'token');

    const dir = await mkdtemp(path.join(tmpdir(), 'berth-config-'));
    const file = path.join(dir, 'berth.yml');
    await writeFile(file, 'auth:\n  mod: token\nstorage:\n  bucket: b\nlisten_addr: x\n');
    assert.throws(
      () => loadConfig({ file, env: {} }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.includes('unknown config key listen_addr') &&
        !e.message.includes('listen_addr (did you mean') &&
        e.message.includes('unknown config key storage.bucket (did you mean storage.s3.bucket?)') &&
        e.message.includes('unknown config key auth.mod (did you mean auth.mode?)'),
    );
  });

  it('knows every BERTH_* variable the code, the tests and the benchmarks use, and documents the non-keys', async () => {
    const known = new Set([...configLeaves().map((leaf) => leaf.env), ...NON_CONFIG_VARIABLES]);
    const used = new Set<string>();
    for (const dir of ['src', 'test', 'bench']) {
      const files = await readdir(path.join(PROJECT_ROOT, dir), { recursive: true });
      for (const file of files.filter((f) => f.endsWith('.ts'))) {
        const text = await readFile(path.join(PROJECT_ROOT, dir, file), 'utf8');
        for (const m of text.matchAll(/\bBERTH_[A-Z0-9_]*[A-Z0-9]\b/g)) used.add(m[0]);
      }
    }
    // Names the tests use to show that unknown variables are refused.
    for (const typo of [
      'BERTH_AUTH_MOD',
      'BERTH_STORAGE_S3_BUKET',
      'BERTH_WHATEVER',
      'BERTH_ADMIN_PASWORD',
    ]) {
      used.delete(typo);
    }
    assert.deepEqual(
      [...used].filter((name) => !known.has(name)),
      [],
    );
    const doc = await readFile(path.join(PROJECT_ROOT, 'docs', 'configuration.md'), 'utf8');
    for (const name of NON_CONFIG_VARIABLES) {
      assert.ok(doc.includes(`\`${name}\``), `docs/configuration.md lacks ${name}`);
    }
  });

  it('documents every key and its environment variable in docs/configuration.md', async () => {
    const doc = await readFile(path.join(PROJECT_ROOT, 'docs', 'configuration.md'), 'utf8');
    for (const leaf of configLeaves()) {
      assert.ok(doc.includes(`\`${leaf.path}\``), `docs/configuration.md lacks ${leaf.path}`);
      assert.ok(doc.includes(`\`${leaf.env}\``), `docs/configuration.md lacks ${leaf.env}`);
    }
  });

  it('parses listen addresses, IPv6 included', () => {
    assert.deepEqual(parseListen('0.0.0.0:5000'), { host: '0.0.0.0', port: 5000 });
    assert.deepEqual(parseListen('[::1]:5001'), { host: '::1', port: 5001 });
    assert.deepEqual(parseListen(':5002'), { host: '0.0.0.0', port: 5002 });
  });

  it('turns a wildcard listen address into a loopback one other local processes can reach', () => {
    assert.equal(reachableAddress('0.0.0.0:5000'), '127.0.0.1:5000');
    assert.equal(reachableAddress(':5000'), '127.0.0.1:5000');
    assert.equal(reachableAddress('[::]:5001'), '[::1]:5001');
    assert.equal(reachableAddress('[::1]:5001'), '[::1]:5001');
    assert.equal(reachableAddress('10.0.0.7:5002'), '10.0.0.7:5002');
  });

  it('makes `berth serve` exit 2 with a message naming the key', () => {
    const r = serveWith({ BERTH_REGISTRY_DELETES: 'sometimes' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /berth: config key registry\.deletes/);
  });

  it('makes `berth serve` exit 2 on a mistyped BERTH_* variable instead of ignoring it', () => {
    const r = serveWith({ BERTH_AUTH_MOD: 'token' });
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr,
      'berth: unknown environment variable BERTH_AUTH_MOD (did you mean BERTH_AUTH_MODE?)\n',
    );
  });
});
