/**
 * Access control end to end: real clients log in to Berth over HTTPS (`auth.mode: token`, certificates from
 * `berth cert`) and push and pull as users and robots with different roles.
 *
 * Identities are seeded straight into the data directory's database before the server starts: a system
 * administrator, `dev` (developer in `team`), `reader` (reader in `team`), the robot `robot$ci` (developer in
 * `team`); namespace `team` is private and `pub` public. Images are seeded into both as the administrator.
 *
 * - skopeo: the robot pushes with `--dest-creds` and pulls back; `reader` may pull but not push ("denied");
 *   anonymous pulls from the public namespace work and from the private one fail.
 * - podman: `login --cert-dir` as dev, push a new image, pull it back; `logout`; as reader the push is denied.
 * - dockerd (a private daemon in its own mount namespace, see below): `docker login`, pull, tag, push, rmi, pull
 *   back with RepoDigests equal to the registry's digest; as reader the push is denied. Also with certificate
 *   verification, through a host name that resolves to ::1.
 * - containerd (`ctr --hosts-dir` with the CA in hosts.toml, `--user`): pull, push to a new tag, push an
 *   imported image (real uploads), pull back; as reader the push is denied.
 * - The audit log (read from the database once the server has stopped) holds the logins and pushes of `dev`
 *   and `robot$ci`.
 *
 * Every client trusts the CA through a directory holding only `ca.crt`: containers/image and dockerd take
 * other *.crt/*.key/*.cert files there for client certificates.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { hashPassword, hashSecret, randomSecret } from '../../src/auth/passwords.ts';
import type { AuditEvent } from '../../src/metadata/auth-store.ts';
import { generateSecret, verify } from '../../src/webhooks/signing.ts';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { createSqliteStore } from '../../src/metadata/dialects.ts';
import {
  MANIFEST_ACCEPT,
  containersEnv,
  missing,
  missingRoot,
  mountsUnder,
  removeTree,
  run,
  skipIf,
  startContainerd,
  startDockerd,
  tempDir,
  type ContainersEnv,
  type RunResult,
  type RunningContainerd,
  type RunningDockerd,
} from '../helpers/clients.ts';
import { layoutDescriptor, writeImageLayout, type ImageLayout } from '../helpers/oci-layout.ts';
import { PROJECT_ROOT, startBerth, type RunningBerth } from '../helpers/server.ts';

/** A name only dockerd's private /etc/hosts knows: it resolves to ::1 (see the docker tests). */
const VERIFIED_HOST = 'berth-e2e.test';

const password = (): string => randomBytes(18).toString('base64url');
const USERS = { admin: password(), dev: password(), reader: password() };
const ROBOT = 'robot$ci';
const ROBOT_SECRET = randomSecret();

/** A denial as clients print it: Berth answers 403 DENIED "requested access to the resource is denied: ...". */
const DENIED = /denied/i;

/** Output of a command that must have failed; its last lines go to the test's diagnostics (the TAP output). */
function failed(t: TestContext, r: RunResult, what: string): string {
  assert.notEqual(r.code, 0, `${what} must fail:\n${r.stdout}\n${r.stderr}`);
  const out = `${r.stdout}\n${r.stderr}`;
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  t.diagnostic(`${what}: ${lines.slice(-2).join(' | ').slice(0, 600)}`);
  return out;
}

describe('access control over HTTPS with real clients', { skip: missing('skopeo') }, () => {
  let work: string;
  let certs: string;
  /** Holds only ca.crt. */
  let trustDir: string;
  let caFile: string;
  let ca: Buffer;
  let dataDir: string;
  let registry: RunningBerth;
  let containers: ContainersEnv;
  let base: ImageLayout;
  /** Tags or repositories pushed by dev, by any client (the audit test looks for them). */
  const pushedByDev: string[] = [];
  const started = Date.now();
  let receiver: WebhookReceiver;
  /** The signing secrets of the two webhook endpoints, by receiver path. */
  const secrets = new Map<string, string>();

  const skopeo = (args: string[], allowFailure = false): Promise<RunResult> =>
    run('skopeo', args, { env: containers.env, allowFailure });

  /** An HTTPS request to the registry trusting the CA. */
  function request(
    pathAndQuery: string,
    options: { method?: string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${registry.url}${pathAndQuery}`,
        { method: options.method ?? 'GET', ca, headers: options.headers ?? {} },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /**
   * The requests under /v2/<repo>/ that Berth answered with 403 after `mark` (an offset into its output), from its
   * access log, as `METHOD path`. Waits up to 2 s: the log line may arrive after the client has exited.
   */
  async function serverDenials(mark: number, repo: string): Promise<string[]> {
    for (let i = 0; ; i++) {
      const found: string[] = [];
      for (const line of registry.output().slice(mark).split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const entry = JSON.parse(line) as { msg?: string; status?: number; method?: string; path?: string };
          if (entry.msg === 'request' && entry.status === 403 && entry.path?.startsWith(`/v2/${repo}/`)) {
            found.push(`${entry.method} ${entry.path}`);
          }
        } catch {
          // a partial line
        }
      }
      if (found.length > 0 || i >= 20) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Asserts that Berth denied (403) a request on `repo` since `mark` and reports which. */
  async function assertServerDenied(t: TestContext, mark: number, repo: string): Promise<void> {
    const denials = await serverDenials(mark, repo);
    assert.ok(denials.length > 0, `Berth answered 403 on ${repo}:\n${registry.output().slice(mark)}`);
    t.diagnostic(`Berth answered 403 to: ${denials.join(', ')}`);
  }

  /**
   * The registry's digest of `repo:ref` as the administrator sees it (token flow: GET /auth/token with Basic
   * credentials, then HEAD with the bearer token); null on 404.
   */
  async function registryDigest(repo: string, ref: string): Promise<string | null> {
    return (await registryManifest(repo, ref))?.digest ?? null;
  }

  /** The digest and size of the manifest `repo:ref` as the registry reports them (HEAD), or null on 404. */
  async function registryManifest(
    repo: string,
    ref: string,
  ): Promise<{ digest: string; size: number } | null> {
    const basic = Buffer.from(`admin:${USERS.admin}`).toString('base64');
    const tokenRes = await request(`/auth/token?scope=${encodeURIComponent(`repository:${repo}:pull`)}`, {
      headers: { authorization: `Basic ${basic}` },
    });
    assert.equal(tokenRes.status, 200, `token for ${repo}: ${tokenRes.body.toString()}`);
    const { token } = JSON.parse(tokenRes.body.toString()) as { token: string };
    const res = await request(`/v2/${repo}/manifests/${ref}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${token}`, accept: MANIFEST_ACCEPT },
    });
    if (res.status === 404) return null;
    assert.equal(res.status, 200, `HEAD ${repo}:${ref}`);
    const digest = res.headers['docker-content-digest'];
    assert.equal(typeof digest, 'string');
    return { digest: digest as string, size: Number(res.headers['content-length']) };
  }

  before(async () => {
    work = await tempDir('auth');
    certs = path.join(work, 'certs');
    await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/main.ts',
        'cert',
        '--out',
        certs,
        ...['localhost', '127.0.0.1', '::1', VERIFIED_HOST].flatMap((h) => ['--host', h]),
      ],
      { cwd: PROJECT_ROOT },
    );
    trustDir = path.join(work, 'trust');
    await mkdir(trustDir);
    caFile = path.join(trustDir, 'ca.crt');
    await copyFile(path.join(certs, 'ca.crt'), caFile);
    ca = await readFile(caFile);

    // Identities, seeded before the server starts.
    dataDir = path.join(work, 'data');
    const store = createSqliteStore(path.join(dataDir, 'berth.db'));
    try {
      await store.migrate();
      const auth = store.authStore();
      await auth.createUser({
        username: 'admin',
        passwordHash: await hashPassword(USERS.admin),
        isAdmin: true,
      });
      await auth.createUser({ username: 'dev', passwordHash: await hashPassword(USERS.dev), isAdmin: false });
      await auth.createUser({
        username: 'reader',
        passwordHash: await hashPassword(USERS.reader),
        isAdmin: false,
      });
      await auth.createRobot({
        name: ROBOT,
        description: 'CI',
        secretHash: hashSecret(ROBOT_SECRET),
        expiresAt: null,
        createdBy: 'admin',
      });
      await auth.createNamespace({ name: 'team', visibility: 'private', description: '' });
      await auth.createNamespace({ name: 'pub', visibility: 'public', description: '' });
      await auth.setMember('team', 'user', 'dev', 'developer');
      await auth.setMember('team', 'user', 'reader', 'reader');
      await auth.setMember('team', 'robot', ROBOT, 'developer');
      // Webhooks: every event in Distribution's format, and team's events as CloudEvents.
      receiver = await startReceiver();
      for (const [path, namespace, format] of [
        ['/distribution', null, 'distribution'],
        ['/cloudevents', 'team', 'cloudevents'],
      ] as const) {
        const secret = generateSecret();
        secrets.set(path, secret);
        await store.webhookStore().create({
          name: format,
          namespace,
          url: `${receiver.url}${path}`,
          format,
          events: [],
          repositoryGlob: '**',
          tagGlob: '*',
          includePulls: false,
          headers: {},
          secret,
          createdBy: 'admin',
        });
      }
    } finally {
      await store.close();
    }

    registry = await startBerth({
      dataDir,
      env: {
        BERTH_AUTH_MODE: 'token',
        BERTH_WEBHOOKS_ALLOWED_HOSTS: '127.0.0.1',
        BERTH_TLS_CERTIFICATE: path.join(certs, 'server.crt'),
        BERTH_TLS_KEY: path.join(certs, 'server.key'),
      },
    });
    assert.match(registry.url, /^https:\/\/127\.0\.0\.1:\d+$/);

    // No insecure hosts: TLS verification stays on.
    containers = await containersEnv([]);
    base = await writeImageLayout(path.join(work, 'src'), { tag: 'base', layers: 2, layerSize: 256 * 1024 });
    for (const target of ['pub/base:v1', 'team/app:base']) {
      await skopeo([
        'copy',
        '--dest-cert-dir',
        trustDir,
        '--dest-creds',
        `admin:${USERS.admin}`,
        base.reference,
        `docker://${registry.host}/${target}`,
      ]);
    }
    assert.equal(await registryDigest('team/app', 'base'), base.manifestDigest);
    assert.equal(await registryDigest('pub/base', 'v1'), base.manifestDigest);
  });

  after(async () => {
    await registry?.dispose();
    await receiver?.close();
    await containers?.cleanup();
    if (work) await removeTree(work);
  });

  // -------------------------------------------------------------------------------------------------------
  describe('skopeo', () => {
    it('a robot pushes with --dest-creds over HTTPS and pulls back', async () => {
      const image = await writeImageLayout(path.join(work, 'skopeo-src'), {
        tag: 'v1',
        layers: 2,
        layerSize: 256 * 1024,
      });
      const ref = `docker://${registry.host}/team/app:robot-v1`;
      await skopeo([
        'copy',
        '--dest-cert-dir',
        trustDir,
        '--dest-creds',
        `${ROBOT}:${ROBOT_SECRET}`,
        image.reference,
        ref,
      ]);
      assert.equal(await registryDigest('team/app', 'robot-v1'), image.manifestDigest);

      const back = path.join(work, 'skopeo-back');
      await skopeo([
        'copy',
        '--src-cert-dir',
        trustDir,
        '--src-creds',
        `${ROBOT}:${ROBOT_SECRET}`,
        ref,
        `oci:${back}:v1`,
      ]);
      assert.equal((await layoutDescriptor(back, 'v1')).digest, image.manifestDigest);
    });

    it('a reader pulls from the private namespace but its push is denied', async (t) => {
      const back = path.join(work, 'skopeo-reader');
      await skopeo([
        'copy',
        '--src-cert-dir',
        trustDir,
        '--src-creds',
        `reader:${USERS.reader}`,
        `docker://${registry.host}/team/app:base`,
        `oci:${back}:base`,
      ]);
      assert.equal((await layoutDescriptor(back, 'base')).digest, base.manifestDigest);

      const mark = registry.output().length;
      const out = failed(
        t,
        await skopeo(
          [
            'copy',
            '--dest-cert-dir',
            trustDir,
            '--dest-creds',
            `reader:${USERS.reader}`,
            base.reference,
            `docker://${registry.host}/team/app:reader-v1`,
          ],
          true,
        ),
        'a push by reader',
      );
      assert.match(out, DENIED);
      await assertServerDenied(t, mark, 'team/app');
      assert.equal(await registryDigest('team/app', 'reader-v1'), null, 'nothing was pushed');
    });

    it('anonymous pulls from the public namespace, not from the private one', async (t) => {
      const back = path.join(work, 'skopeo-anon');
      await skopeo([
        'copy',
        '--src-cert-dir',
        trustDir,
        '--src-no-creds',
        `docker://${registry.host}/pub/base:v1`,
        `oci:${back}:pub`,
      ]);
      assert.equal((await layoutDescriptor(back, 'pub')).digest, base.manifestDigest);

      const out = failed(
        t,
        await skopeo(
          [
            'copy',
            '--src-cert-dir',
            trustDir,
            '--src-no-creds',
            `docker://${registry.host}/team/app:base`,
            `oci:${back}:team`,
          ],
          true,
        ),
        'an anonymous pull from team',
      );
      assert.match(out, /unauthorized|authentication required|denied/i);
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('podman', { skip: missing('podman') }, () => {
    const podman = (args: string[], options: { input?: string; allowFailure?: boolean } = {}) =>
      run('podman', args, { env: containers.env, ...options });
    const login = (user: 'dev' | 'reader') =>
      podman(['login', '--cert-dir', trustDir, registry.host, '-u', user, '--password-stdin'], {
        input: USERS[user],
      });

    it('logs in as dev, pushes a new image and pulls it back', async () => {
      const login1 = await login('dev');
      assert.match(login1.stdout, /Login Succeeded/);
      const auth = JSON.parse(await readFile(containers.authFile, 'utf8')) as { auths: object };
      assert.ok(registry.host in auth.auths, 'credentials stored in REGISTRY_AUTH_FILE');

      const fresh = await writeImageLayout(path.join(work, 'podman-src'), {
        tag: 'v1',
        layers: 1,
        layerSize: 256 * 1024,
      });
      // Into podman's store (`podman pull oci:DIR` names the image after the path, which has upper case).
      const local = 'localhost/podman-src:v1';
      await skopeo(['copy', fresh.reference, `containers-storage:${local}`]);
      const name = `${registry.host}/team/podman:v1`;
      await podman(['tag', local, name]);
      const digestFile = path.join(work, 'podman.digest');
      await podman(['push', '--cert-dir', trustDir, '--digestfile', digestFile, name]);
      const pushed = (await readFile(digestFile, 'utf8')).trim();
      assert.match(pushed, /^sha256:[0-9a-f]{64}$/);
      assert.equal(await registryDigest('team/podman', 'v1'), pushed);
      pushedByDev.push('team/podman:v1');

      await podman(['rmi', '--force', local, name]);
      await podman(['pull', '--quiet', '--cert-dir', trustDir, name]);
      const inspected = JSON.parse((await podman(['image', 'inspect', name])).stdout) as {
        Id: string;
        Digest: string;
      }[];
      assert.equal(inspected[0]?.Digest, pushed);
      assert.equal(`sha256:${inspected[0]?.Id}`, fresh.configDigest);
    });

    it('podman search after login lists the private repositories dev may pull; anonymous only public ones', async () => {
      // podman prints nothing at all (not `[]`) when nothing matches.
      const search = async (term: string): Promise<string[]> => {
        const out = await podman([
          'search',
          '--tls-verify=false',
          '--format',
          'json',
          `${registry.host}/${term}`,
        ]);
        if (out.stdout.trim() === '') return [];
        return (JSON.parse(out.stdout) as { Name: string }[]).map((r) =>
          r.Name.replace(`${registry.host}/`, ''),
        );
      };
      const asDev = await search('team');
      assert.ok(asDev.includes('team/podman') && asDev.includes('team/app'), `as dev: ${asDev.join(', ')}`);
      await podman(['logout', registry.host]);
      try {
        const anonymous = await search('base');
        assert.deepEqual(anonymous, ['pub/base'], 'anonymous: the public repository');
        assert.deepEqual(await search('team'), [], 'anonymous: nothing private');
      } finally {
        await login('dev');
      }
    });

    it('logs out; as reader the push is denied', async (t) => {
      await podman(['logout', registry.host]);
      const auth = JSON.parse(await readFile(containers.authFile, 'utf8')) as { auths: object };
      assert.ok(!(registry.host in auth.auths), 'credentials removed');

      await login('reader');
      const name = `${registry.host}/team/podman:reader`;
      await podman(['tag', `${registry.host}/team/podman:v1`, name]);
      const mark = registry.output().length;
      const out = failed(
        t,
        await podman(['push', '--cert-dir', trustDir, name], { allowFailure: true }),
        'a push by reader',
      );
      assert.match(out, DENIED);
      await assertServerDenied(t, mark, 'team/podman');
      assert.equal(await registryDigest('team/podman', 'reader'), null, 'nothing was pushed');
      await podman(['logout', registry.host]);
    });
  });

  // -------------------------------------------------------------------------------------------------------
  /**
   * dockerd reads CAs from /etc/docker/certs.d/HOST:PORT/ca.crt, a global path. It runs in a private mount
   * namespace instead, with a temp dir bind-mounted over /etc/docker (and a temp file over /etc/hosts), so the
   * host's /etc stays untouched. When /etc/docker does not exist it is created for the mount point and removed
   * afterwards (an empty directory).
   *
   * dockerd treats 127.0.0.0/8 as an insecure registry (always, whatever daemon.json says): for 127.0.0.1:PORT
   * it tries HTTPS *without* certificate verification (and would fall back to plain HTTP). So the 127.0.0.1
   * tests prove login, token auth, push and pull over HTTPS (Berth only speaks HTTPS), not verification;
   * a host name resolving to 127.0.0.1 would not help, because dockerd checks the resolved addresses against
   * the insecure CIDRs. ::1 is not in 127.0.0.0/8, though: dockerd resolves `berth-e2e.test` (in its private
   * /etc/hosts) to ::1, where a TCP relay forwards to Berth, and treats it as a secure registry. The last test
   * shows that it verifies there: without the CA in certs.d the login fails with an x509 error, with it the
   * login, push and pull work.
   */
  describe(
    'docker',
    { skip: skipIf(missing('dockerd', 'docker', 'unshare'), missingRoot('dockerd')) },
    () => {
      let dockerd: RunningDockerd;
      let etcDocker: string;
      let createdEtcDocker = false;
      let relay: net.Server | undefined;
      const sockets = new Set<net.Socket>();

      const docker = (args: string[], options: { input?: string; allowFailure?: boolean } = {}) =>
        dockerd.docker(args, options);
      const login = (host: string, user: 'dev' | 'reader', allowFailure = false) =>
        docker(['login', host, '-u', user, '--password-stdin'], { input: USERS[user], allowFailure });
      const repoDigests = async (name: string): Promise<string[]> => {
        const [img] = JSON.parse((await docker(['image', 'inspect', name])).stdout) as {
          RepoDigests: string[];
        }[];
        return img?.RepoDigests ?? [];
      };
      /** `docker push` prints `TAG: digest: sha256:... size: N`. */
      const pushedDigest = (out: RunResult): string => {
        const m = /digest: (sha256:[0-9a-f]{64})/.exec(out.stdout);
        assert.ok(m, `digest in docker push output:\n${out.stdout}`);
        return m[1] as string;
      };
      /** A one-layer image from a tar of random bytes (`docker import`), so the push uploads a new layer. */
      const importImage = async (name: string): Promise<void> => {
        const dir = path.join(work, `docker-rootfs-${randomBytes(4).toString('hex')}`);
        await mkdir(dir);
        await writeFile(path.join(dir, 'data.bin'), randomBytes(128 * 1024));
        const tar = `${dir}.tar`;
        await run('tar', ['-C', dir, '-cf', tar, '.']);
        await docker(['import', tar, name]);
      };

      before(async () => {
        etcDocker = path.join(work, 'etc-docker');
        await mkdir(path.join(etcDocker, 'certs.d', registry.host), { recursive: true });
        await copyFile(caFile, path.join(etcDocker, 'certs.d', registry.host, 'ca.crt'));
        const hosts = path.join(work, 'hosts');
        await writeFile(hosts, `127.0.0.1 localhost\n::1 localhost\n::1 ${VERIFIED_HOST}\n`);
        if (!existsSync('/etc/docker')) {
          await mkdir('/etc/docker');
          createdEtcDocker = true;
        }
        dockerd = await startDockerd(undefined, {
          privateMounts: [
            { source: etcDocker, target: '/etc/docker' },
            { source: hosts, target: '/etc/hosts' },
          ],
        });
      });

      after(async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => (relay ? relay.close(() => resolve()) : resolve()));
        await dockerd?.stop();
        if (createdEtcDocker) await rmdir('/etc/docker').catch(() => undefined);
      });

      it("dockerd's mounts are invisible on the host", async () => {
        assert.ok(!existsSync(path.join('/etc/docker/certs.d', registry.host)));
        assert.deepEqual(mountsUnder('/etc/docker'), []);
        assert.ok(!(await readFile('/etc/hosts', 'utf8')).includes(VERIFIED_HOST));
      });

      it('logs in as dev, pulls, pushes, and pulls back with the registry digest', async () => {
        const login1 = await login(registry.host, 'dev');
        assert.match(login1.stdout, /Login Succeeded/);
        const config = JSON.parse(
          await readFile(path.join(dockerd.env.DOCKER_CONFIG as string, 'config.json'), 'utf8'),
        ) as { auths: Record<string, unknown> };
        assert.ok(registry.host in config.auths, 'credentials in the private DOCKER_CONFIG');

        // Pull of an existing image from the private namespace.
        const baseName = `${registry.host}/team/app:base`;
        await docker(['pull', baseName]);
        assert.deepEqual(await repoDigests(baseName), [`${registry.host}/team/app@${base.manifestDigest}`]);

        // tag + push of it (layers mounted from team/app), and of an imported image (a new layer uploaded).
        const retagged = `${registry.host}/team/docker:v1`;
        await docker(['tag', baseName, retagged]);
        const d1 = pushedDigest(await docker(['push', retagged]));
        assert.equal(await registryDigest('team/docker', 'v1'), d1);
        const imported = `${registry.host}/team/docker:imported`;
        await importImage(imported);
        const d2 = pushedDigest(await docker(['push', imported]));
        assert.equal(await registryDigest('team/docker', 'imported'), d2);
        pushedByDev.push('team/docker:v1', 'team/docker:imported');

        await docker(['rmi', baseName, retagged, imported]);
        await docker(['pull', retagged]);
        await docker(['pull', imported]);
        assert.deepEqual(await repoDigests(retagged), [`${registry.host}/team/docker@${d1}`]);
        assert.deepEqual(await repoDigests(imported), [`${registry.host}/team/docker@${d2}`]);
      });

      it('as reader the push is denied and docker prints the denial', async (t) => {
        await docker(['logout', registry.host]);
        await login(registry.host, 'reader');
        const name = `${registry.host}/team/docker:reader`;
        await importImage(name);
        const mark = registry.output().length;
        const out = failed(t, await docker(['push', name], { allowFailure: true }), 'a push by reader');
        assert.match(out, DENIED);
        await assertServerDenied(t, mark, 'team/docker');
        assert.equal(await registryDigest('team/docker', 'reader'), null, 'nothing was pushed');
        await docker(['logout', registry.host]);
      });

      it('for 127.0.0.1 dockerd skips certificate verification (an insecure registry)', async () => {
        const info = await docker(['info', '--format', '{{json .RegistryConfig.InsecureRegistryCIDRs}}']);
        assert.ok((JSON.parse(info.stdout) as string[]).includes('127.0.0.0/8'), info.stdout);
        // Without any CA for 127.0.0.1:PORT the login still works: certs.d is not even read for it.
        const ca127 = path.join(etcDocker, 'certs.d', registry.host, 'ca.crt');
        await rm(ca127);
        try {
          assert.match((await login(registry.host, 'dev')).stdout, /Login Succeeded/);
          await docker(['logout', registry.host]);
        } finally {
          await copyFile(caFile, ca127);
        }
      });

      it('verifies the certificate for a registry that is not on 127.0.0.0/8 (a host name for ::1)', async (t) => {
        // A TCP relay on [::1] to Berth: TLS goes through it end to end.
        const server = net.createServer((client) => {
          const upstream = net.connect(registry.port, '127.0.0.1');
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on('error', () => {
              client.destroy();
              upstream.destroy();
            });
            s.on('close', () => sockets.delete(s));
          }
          client.pipe(upstream).pipe(client);
        });
        try {
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, '::1', () => resolve());
          });
        } catch (err) {
          t.skip(`cannot listen on [::1]: ${(err as Error).message}`);
          return;
        }
        relay = server;
        const relayPort = (server.address() as net.AddressInfo).port;
        const host = `${VERIFIED_HOST}:${relayPort}`;

        // No CA for this host yet: dockerd verifies against the system roots and fails.
        const out = failed(t, await login(host, 'dev', true), 'a login without the CA');
        assert.match(out, /x509|certificate signed by unknown authority/);

        const certDir = path.join(etcDocker, 'certs.d', host);
        await mkdir(certDir, { recursive: true });
        await copyFile(caFile, path.join(certDir, 'ca.crt'));
        assert.match((await login(host, 'dev')).stdout, /Login Succeeded/);
        const name = `${host}/team/docker:verified`;
        await importImage(name);
        const digest = pushedDigest(await docker(['push', name]));
        assert.equal(await registryDigest('team/docker', 'verified'), digest);
        pushedByDev.push('team/docker:verified');
        await docker(['rmi', name]);
        await docker(['pull', name]);
        assert.deepEqual(await repoDigests(name), [`${host}/team/docker@${digest}`]);
        await docker(['logout', host]);
        await rm(certDir, { recursive: true });
      });
    },
  );

  // -------------------------------------------------------------------------------------------------------
  describe('containerd', { skip: skipIf(missing('containerd', 'ctr'), missingRoot('containerd')) }, () => {
    let containerd: RunningContainerd;
    let hostsDir: string;
    const ctr = (args: string[], allowFailure = false) => containerd.ctr(args, { allowFailure });
    const remote = (user: 'dev' | 'reader'): string[] => [
      '--hosts-dir',
      hostsDir,
      '--user',
      `${user}:${USERS[user]}`,
    ];
    const ref = (name: string): string => `${registry.host}/${name}`;
    async function localImages(): Promise<Map<string, string>> {
      const images = new Map<string, string>();
      for (const line of (await ctr(['images', 'ls'])).stdout.split('\n').slice(1)) {
        const [name, , digest] = line.trim().split(/\s+/);
        if (name && digest) images.set(name, digest);
      }
      return images;
    }

    before(async () => {
      hostsDir = path.join(work, 'ctr-hosts');
      const origin = `https://${registry.host}`;
      await mkdir(path.join(hostsDir, registry.host), { recursive: true });
      await writeFile(
        path.join(hostsDir, registry.host, 'hosts.toml'),
        [
          `server = ${JSON.stringify(origin)}`,
          '',
          `[host.${JSON.stringify(origin)}]`,
          `  ca = ${JSON.stringify(caFile)}`,
          '  capabilities = ["pull", "resolve", "push"]',
          '',
        ].join('\n'),
      );
      containerd = await startContainerd();
    });

    after(async () => containerd?.stop());

    it('pulls as dev, pushes to a new tag and pulls back', async () => {
      await ctr(['images', 'pull', ...remote('dev'), ref('team/app:base')]);
      assert.equal((await localImages()).get(ref('team/app:base')), base.manifestDigest);

      await ctr(['images', 'push', ...remote('dev'), ref('team/app:ctr-v1'), ref('team/app:base')]);
      assert.equal(await registryDigest('team/app', 'ctr-v1'), base.manifestDigest);
      pushedByDev.push('team/app:ctr-v1');

      await ctr(['images', 'rm', '--sync', ref('team/app:base')]);
      await ctr(['images', 'pull', ...remote('dev'), ref('team/app:ctr-v1')]);
      assert.equal((await localImages()).get(ref('team/app:ctr-v1')), base.manifestDigest);
    });

    it('pushes an imported image (new blobs uploaded) and pulls it back', async () => {
      const dir = path.join(work, 'ctr-fresh');
      const fresh = await writeImageLayout(dir, { tag: 'v1', layers: 2, layerSize: 256 * 1024 });
      const archive = path.join(work, 'ctr-fresh.tar');
      await run('tar', ['-C', dir, '-cf', archive, '.']);
      await ctr(['images', 'import', '--base-name', ref('team/ctr'), archive]);
      await ctr(['images', 'push', ...remote('dev'), ref('team/ctr:v1')]);
      assert.equal(await registryDigest('team/ctr', 'v1'), fresh.manifestDigest);
      pushedByDev.push('team/ctr:v1');

      await ctr(['images', 'rm', '--sync', ref('team/ctr:v1')]);
      await ctr(['images', 'pull', ...remote('dev'), ref('team/ctr:v1')]);
      assert.equal((await localImages()).get(ref('team/ctr:v1')), fresh.manifestDigest);
    });

    it('as reader the push is denied', async (t) => {
      const dir = path.join(work, 'ctr-reader');
      await writeImageLayout(dir, { tag: 'reader', layers: 1, layerSize: 64 * 1024 });
      const archive = path.join(work, 'ctr-reader.tar');
      await run('tar', ['-C', dir, '-cf', archive, '.']);
      await ctr(['images', 'import', '--base-name', ref('team/ctr'), archive]);
      const mark = registry.output().length;
      const out = failed(
        t,
        await ctr(['images', 'push', ...remote('reader'), ref('team/ctr:reader')], true),
        'a push by reader',
      );
      // ctr 1.6 prints only the status ("ctr: unexpected status: 403 Forbidden"), not the error body.
      assert.match(out, /denied|403 Forbidden/i);
      await assertServerDenied(t, mark, 'team/ctr');
      assert.equal(await registryDigest('team/ctr', 'reader'), null, 'nothing was pushed');
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('webhooks', () => {
    interface DistributionEvent {
      id: string;
      action: string;
      target: { mediaType?: string; size?: number; digest?: string; repository: string; tag?: string };
      actor: { name?: string };
      request: { addr?: string; method: string; useragent: string };
    }
    interface CloudEvent {
      id: string;
      type: string;
      subject: string;
      data: { repository: string; tag?: string; digest?: string; actor?: { name: string } };
    }

    /** The signed bodies received on `path`, each verified against the endpoint's secret. */
    function received<T>(path: string): T[] {
      return receiver.requests
        .filter((r) => r.path === path)
        .map((r) => {
          const id = verify(secrets.get(path) as string, r.headers, r.body);
          const body = JSON.parse(r.body) as { events?: T[] } & T;
          const event = path === '/distribution' ? (body.events?.[0] as T) : body;
          assert.equal((event as { id: string }).id, id, 'webhook-id is the event id');
          return event;
        });
    }

    async function until(what: string, check: () => boolean): Promise<void> {
      const deadline = Date.now() + 30_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }

    it("report the robot's skopeo push with repository, tag, digest, size, media type, actor and address", async () => {
      const robotPush = (): DistributionEvent | undefined =>
        received<DistributionEvent>('/distribution').find(
          (e) => e.action === 'push' && e.target.tag === 'robot-v1',
        );
      await until('the push event of team/app:robot-v1', () => robotPush() !== undefined);
      const event = robotPush() as DistributionEvent;
      const manifest = (await registryManifest('team/app', 'robot-v1')) as { digest: string; size: number };
      assert.equal(event.target.repository, 'team/app');
      assert.equal(event.target.digest, manifest.digest);
      assert.equal(event.target.size, manifest.size);
      assert.equal(event.target.mediaType, 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(event.actor.name, ROBOT);
      assert.equal(event.request.addr, '127.0.0.1');
      assert.equal(event.request.method, 'PUT');
      assert.match(event.request.useragent, /containers|skopeo/i);
      // The administrator's seeding pushes came first, each once.
      const admin = received<DistributionEvent>('/distribution').filter(
        (e) => e.action === 'push' && e.actor.name === 'admin',
      );
      assert.deepEqual(admin.map((e) => `${e.target.repository}:${e.target.tag}`).sort(), [
        'pub/base:v1',
        'team/app:base',
      ]);
    });

    it('report docker push as the repository, the mounted layers, then the tagged manifest, by dev', async (t) => {
      if (!pushedByDev.includes('team/docker:v1')) return t.skip('the docker tests did not push');
      const forDocker = (): CloudEvent[] =>
        received<CloudEvent>('/cloudevents').filter((e) => e.data.repository === 'team/docker');
      await until('the push event of team/docker:v1', () =>
        forDocker().some((e) => e.type === 'io.berth.manifest.pushed' && e.data.tag === 'v1'),
      );
      const types = forDocker().map((e) => e.type);
      t.diagnostic(`team/docker events: ${types.join(', ')}`);
      assert.equal(types[0], 'io.berth.repository.created');
      const pushed = types.indexOf('io.berth.manifest.pushed');
      assert.ok(
        types.slice(1, pushed).includes('io.berth.blob.mounted'),
        'layers mounted from team/app first',
      );
      const event = forDocker()[pushed] as CloudEvent;
      assert.equal(event.subject, 'team/docker:v1');
      assert.equal(event.data.actor?.name, 'dev');
      assert.equal(event.data.digest, await registryDigest('team/docker', 'v1'));
      // pub/ is not team's: the namespace endpoint never heard of it.
      assert.ok(!received<CloudEvent>('/cloudevents').some((e) => e.data.repository.startsWith('pub/')));
    });
  });

  // -------------------------------------------------------------------------------------------------------
  describe('audit log', () => {
    it('holds the logins and pushes of dev and robot$ci', async (t) => {
      await registry.stop();
      const store = createSqliteStore(path.join(dataDir, 'berth.db'));
      let events: AuditEvent[];
      try {
        events = (await store.authStore().queryAudit({ since: new Date(started - 1000), limit: 1000 })).items;
      } finally {
        await store.close();
      }
      const has = (actor: string, action: string, target?: string): boolean =>
        events.some(
          (e) =>
            e.actor === actor &&
            e.action === action &&
            e.success &&
            (target === undefined || e.target === target),
        );
      const summary = events.map((e) => `${e.actor} ${e.action} ${e.target ?? ''} ${e.success}`).join('\n');
      const counts = new Map<string, number>();
      for (const e of events) {
        const key = `${e.actor} ${e.action}${e.success ? '' : ' (failed)'}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      t.diagnostic(`audit events: ${[...counts].map(([k, n]) => `${k} x${n}`).join(', ')}`);

      assert.ok(has(ROBOT, 'login'), `robot login in:\n${summary}`);
      assert.ok(has(ROBOT, 'push', 'team/app:robot-v1'), `robot push in:\n${summary}`);
      assert.ok(has('admin', 'push', 'team/app:base'), `admin push in:\n${summary}`);
      assert.ok(!has('reader', 'push'), 'no push by reader');
      assert.ok(
        events.some((e) => e.actor === 'reader' && e.action === 'push' && !e.success),
        `the denied pushes of reader in:\n${summary}`,
      );
      if (pushedByDev.length === 0) return; // podman, docker and containerd were all skipped
      assert.ok(has('dev', 'login'), `dev login in:\n${summary}`);
      for (const target of pushedByDev) assert.ok(has('dev', 'push', target), `dev push of ${target}`);
    });
  });
});
