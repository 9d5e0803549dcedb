/**
 * The container image: buildah builds the Containerfile, podman runs it, skopeo pushes an image to the
 * containerised Berth and pulls it back. No image registry is reachable here, so the Node.js base image is made
 * locally: a minimal Debian root filesystem from Debian's packages (debootstrap) plus node and npm from npm's
 * `node` and `npm` packages, the shape of the official `node:<line>-bookworm-slim` images. The base is cached as a
 * tarball (`BERTH_TEST_CACHE`, else ~/.cache/berth-test; delete it to take a newer Node 24) because debootstrap
 * takes a few minutes. Skipped, with the reason, without the tools or root; under CI=true a missing tool fails
 * the test instead.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import tls from 'node:tls';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  containersEnv,
  missing,
  missingRoot,
  removeTree,
  run,
  skipIf,
  tempDir,
  which,
  type ContainersEnv,
  type RunResult,
} from '../helpers/clients.ts';
import { layoutDescriptor, writeImageLayout, type ImageLayout } from '../helpers/oci-layout.ts';
import { PROJECT_ROOT } from '../helpers/server.ts';

const NODE_LINE = '24';
const DEBIAN_SUITE = 'bookworm';
const DEBIAN_MIRROR = process.env.BERTH_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const CACHE_DIR = process.env.BERTH_TEST_CACHE ?? path.join(homedir(), '.cache', 'berth-test');
const BASE_TAR = path.join(CACHE_DIR, `base-${DEBIAN_SUITE}-node${NODE_LINE}.tar`);
const BASE_IMAGE = `localhost/berth-test-base:${DEBIAN_SUITE}-node${NODE_LINE}`;
const IMAGE = 'localhost/berth-test:latest';

const unavailable = skipIf(
  missing('buildah', 'podman', 'skopeo', ...(existsSync(BASE_TAR) ? [] : ['debootstrap'])),
  missingRoot('debootstrap and podman with host networking'),
);

/**
 * Writes the base image's root filesystem as a tarball at BASE_TAR (atomically: a partial file is renamed), unless
 * it is there already.
 */
async function ensureBaseTarball(work: string): Promise<void> {
  if (existsSync(BASE_TAR)) return;
  const rootfs = path.join(work, 'rootfs');
  await run('debootstrap', ['--variant=minbase', DEBIAN_SUITE, rootfs, DEBIAN_MIRROR], {
    timeoutMs: 900_000,
  });
  // node: npm's `node` package installs node-<os>-<arch>, which holds the official build's bin/node.
  const nodePrefix = path.join(work, 'node');
  await run('npm', ['install', '--prefix', nodePrefix, '--no-audit', '--no-fund', `node@${NODE_LINE}`], {
    timeoutMs: 300_000,
  });
  const nested = path.join(nodePrefix, 'node_modules', 'node', 'node_modules');
  const build = (await readdir(nested)).find((d) => /^node-(linux|darwin|win)-/.test(d));
  assert.ok(build, `npm's node package installed no binary under ${nested}`);
  await copyFile(path.join(nested, build, 'bin', 'node'), path.join(rootfs, 'usr', 'local', 'bin', 'node'));
  await chmod(path.join(rootfs, 'usr', 'local', 'bin', 'node'), 0o755);
  // npm, as the official images have it: /usr/local/lib/node_modules/npm, linked from /usr/local/bin.
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', work, 'npm@11'], {
    timeoutMs: 300_000,
  });
  const npmDir = path.join(rootfs, 'usr', 'local', 'lib', 'node_modules', 'npm');
  await mkdir(npmDir, { recursive: true });
  const tarball = path.join(work, packed.stdout.trim().split('\n').pop() as string);
  await run('tar', ['-xzf', tarball, '-C', npmDir, '--strip-components=1', '--no-same-owner']);
  await symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(rootfs, 'usr', 'local', 'bin', 'npm'));
  await symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(rootfs, 'usr', 'local', 'bin', 'npx'));
  // Downloaded packages and package lists, as the official slim images drop them.
  for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    for (const entry of await readdir(path.join(rootfs, d))) {
      if (entry !== 'partial') await rm(path.join(rootfs, d, entry), { recursive: true, force: true });
    }
  }
  await mkdir(CACHE_DIR, { recursive: true });
  const partial = `${BASE_TAR}.partial-${process.pid}`;
  await run('tar', ['-C', rootfs, '--numeric-owner', '-cf', partial, '.'], { timeoutMs: 300_000 });
  await rename(partial, BASE_TAR);
}

/**
 * npm's configuration for the build's downloads, given to buildah as the build secret `npmrc` that the
 * Containerfile mounts: this machine's registry, and the certificate authorities its npm and node trust (Node's
 * own, `NODE_EXTRA_CA_CERTS` and npm's `cafile`, e.g. a TLS-inspecting proxy's), since the base image has only
 * Node's own.
 */
async function npmrcSecret(work: string): Promise<string[]> {
  const registry = (await run('npm', ['config', 'get', 'registry'])).stdout.trim();
  const cafile = (await run('npm', ['config', 'get', 'cafile'])).stdout.trim();
  const pems = [...tls.rootCertificates];
  for (const file of [process.env.NODE_EXTRA_CA_CERTS, cafile]) {
    if (file && file !== 'null' && file !== 'undefined' && existsSync(file)) {
      pems.push(...((await readFile(file, 'utf8')).match(PEM_CERTIFICATE) ?? []));
    }
  }
  const lines = [`registry=${registry}`, ...[...new Set(pems)].map((pem) => `ca[]=${JSON.stringify(pem)}`)];
  const npmrc = path.join(work, 'npmrc');
  await writeFile(npmrc, `${lines.join('\n')}\n`, { mode: 0o600 });
  return ['--secret', `id=npmrc,src=${npmrc}`];
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/g;

/** A free TCP port on 127.0.0.1 (Berth runs with host networking). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForRegistry(url: string, logs: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/v2/`)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the container did not serve /v2/ in 60 s:\n${await logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe(
  'the container image (Containerfile, buildah, podman)',
  // Under CI the tools are installed (.ci/run): `missing` and `missingRoot` throw for a missing one then.
  { skip: unavailable, timeout: 1_800_000 },
  () => {
    let work: string;
    let containers: ContainersEnv;
    let url: string;
    let host: string;
    let image: ImageLayout;
    const name = `berth-test-${process.pid}`;
    const volume = `berth-test-data-${process.pid}`;

    const podman = (args: string[], allowFailure = false): Promise<RunResult> =>
      run('podman', args, { env: containers.env, allowFailure, timeoutMs: 120_000 });
    /**
     * Runs the image (host networking, Berth on `host`, data in the named volume) and waits for /v2/. For CI
     * machines that are containers themselves: resource limits below the host's (podman raises them by default,
     * which needs CAP_SYS_RESOURCE), runc when installed (crun 1.8 refuses a hybrid cgroup hierarchy), and no
     * health check timer (podman schedules it with systemd): the test runs the check itself.
     */
    const start = async (): Promise<void> => {
      await podman([
        'run',
        '--detach',
        '--name',
        name,
        ...(which('runc') ? ['--runtime', 'runc'] : []),
        '--ulimit',
        'nofile=8192:8192',
        '--ulimit',
        'nproc=4096:4096',
        '--health-interval',
        'disable',
        '--network',
        'host',
        '--env',
        `BERTH_LISTEN=${host}`,
        '--volume',
        `${volume}:/var/lib/berth`,
        IMAGE,
      ]);
      await waitForRegistry(url, logs);
    };
    const logs = async (): Promise<string> => {
      const r = await podman(['logs', name], true);
      return r.stdout + r.stderr;
    };

    before(async () => {
      work = await tempDir('image');
      await ensureBaseTarball(work);
      const port = await freePort();
      host = `127.0.0.1:${port}`;
      url = `http://${host}`;
      containers = await containersEnv([host]);
      await podman(['import', '--change', 'CMD ["node"]', BASE_TAR, BASE_IMAGE]);
      await run(
        'buildah',
        [
          'build',
          '--format',
          'docker',
          '--network',
          'host',
          ...(await npmrcSecret(work)),
          '--build-arg',
          `NODE_IMAGE=${BASE_IMAGE}`,
          '--file',
          path.join(PROJECT_ROOT, 'Containerfile'),
          '--tag',
          IMAGE,
          PROJECT_ROOT,
        ],
        { env: containers.env, timeoutMs: 1_200_000 },
      );
      await start();
      image = await writeImageLayout(path.join(work, 'layout'), {
        tag: 'v1',
        layers: 2,
        layerSize: 256 * 1024,
      });
    });
    after(async () => {
      if (containers) {
        await podman(['rm', '--force', '--time', '0', name], true);
        await podman(['volume', 'rm', '--force', volume], true);
        await podman(['rmi', '--force', IMAGE, BASE_IMAGE], true);
        await containers.cleanup();
      }
      if (work) await removeTree(work);
    });

    it('runs node as PID 1, as a non-root user, with the data in the volume', async () => {
      const [inspected] = JSON.parse((await podman(['image', 'inspect', IMAGE])).stdout) as {
        Config: { User?: string; ExposedPorts?: Record<string, unknown>; Volumes?: Record<string, unknown> };
        Healthcheck?: { Test?: string[] };
      }[];
      const config = inspected?.Config;
      assert.equal(config?.User, 'berth');
      assert.ok(config?.ExposedPorts && '5000/tcp' in config.ExposedPorts, 'EXPOSE 5000');
      assert.ok(config?.Volumes && '/var/lib/berth' in config.Volumes, 'VOLUME /var/lib/berth');
      assert.match(String(inspected?.Healthcheck?.Test), /\/healthz/);
      const pid1 = await podman(['exec', name, 'cat', '/proc/1/cmdline']);
      assert.match(pid1.stdout.replaceAll('\0', ' '), /^node .*dist\/main\.js serve/);
      assert.notEqual((await podman(['exec', name, 'id', '-u'])).stdout.trim(), '0');
      const typescript = await podman(
        ['exec', name, 'test', '-e', '/opt/berth/node_modules/typescript'],
        true,
      );
      assert.notEqual(typescript.code, 0, 'no development dependencies in the image');
    });

    it('passes its health check', async () => {
      const result = await podman(['healthcheck', 'run', name], true);
      assert.equal(result.code, 0, result.stdout + result.stderr);
    });

    it('takes a push from skopeo and serves it back', async () => {
      await run(
        'skopeo',
        ['copy', '--dest-tls-verify=false', image.reference, `docker://${host}/team/app:1.0`],
        {
          env: containers.env,
        },
      );
      const back = path.join(work, 'back');
      await run(
        'skopeo',
        ['copy', '--src-tls-verify=false', `docker://${host}/team/app:1.0`, `oci:${back}:back`],
        {
          env: containers.env,
        },
      );
      assert.equal((await layoutDescriptor(back, 'back')).digest, image.manifestDigest);
    });

    it('stops gracefully on SIGTERM (exit 0) and keeps its data in the volume across containers', async () => {
      await podman(['stop', '--time', '20', name]);
      const state = await podman(['inspect', '--format', '{{.State.ExitCode}}', name]);
      assert.equal(state.stdout.trim(), '0', await logs());
      await podman(['rm', name]);
      await start();
      const res = await fetch(`${url}/v2/team/app/manifests/1.0`, {
        method: 'HEAD',
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), image.manifestDigest);
    });
  },
);
