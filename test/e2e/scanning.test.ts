/**
 * Vulnerability scanning with real clients. Access control is on (`auth.mode: token`, so the external scanner gets
 * a pull token; Basic credentials work on /v2 too): `ci` is a developer (may push) in every namespace, `dev` a
 * reader (may pull only), `admin` a system administrator driving the admin API.
 *
 * The scanned image is made of this machine's own package data: one layer holding /var/lib/dpkg/status and
 * /etc/os-release (Debian 12), pushed by `ci` over HTTP. Background jobs run in this process, so pushes are
 * scanned by the `scanning.scan` job the push event enqueues, as in production.
 *
 * 1. the push-triggered scan finishes with the machine's packages and, the database being empty, no finding;
 * 2. importing the OSV fixtures through the admin API rematches it: DEBIAN-CVE-2023-45853 (zlib, unfixed, CVSS 9.8)
 *    is listed, DSA-5514-1 (glibc, fixed in a version older than the installed libc6) is not;
 * 3. under `mode: enforce, severity: high`, docker, podman and skopeo pulls by `dev` fail with the vulnerability
 *    id in their output; `ci` pulls (may push); an allowlist entry for the finding unlocks `dev`'s pull, an
 *    expired one does not; under `warn` the pull succeeds and the manifest carries a `Warning: 199` header; the
 *    audit log records the refusal;
 * 4. an external scanner (a Harbor Pluggable Scanner API v1.1 double) registered through the admin API scans a
 *    namespace's pushes: it receives the repository, digest, registry URL and a bearer token that may pull that
 *    repository only; its findings are the stored report and an enforcing policy refuses on them;
 * 5. `attachSboms` attaches SPDX 2.3 and CycloneDX 1.6 documents as referrers naming the image's packages;
 *    pulls are not affected.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it, type TestContext } from 'node:test';
import { hashPassword } from '../../src/auth/passwords.ts';
import type { StoredScan } from '../../src/metadata/scan-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { createTestRegistry, type TestRegistry } from '../helpers/app.ts';
import {
  MANIFEST_ACCEPT,
  containersEnv,
  missing,
  missingRoot,
  removeTree,
  run,
  skipIf,
  startDockerd,
  tempDir,
  type ContainersEnv,
  type RunResult,
  type RunningDockerd,
} from '../helpers/clients.ts';
import { E2E_TARGET } from '../helpers/distribution.ts';
import { startHarborScanner, type HarborScannerDouble } from '../helpers/harbor-scanner.ts';
import { buildLayer } from '../helpers/tar.ts';

const PASSWORDS = {
  admin: 'admin-scanning-password-1',
  ci: 'ci-scanning-password-1',
  dev: 'dev-scanning-password-1',
} as const;
type User = keyof typeof PASSWORDS;
const basic = (user: User): string => `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}`;

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const SPDX_JSON = 'application/spdx+json';
const CYCLONEDX_JSON = 'application/vnd.cyclonedx+json';

const FIXTURES = path.join(import.meta.dirname, '../fixtures/osv');
/** The zlib record that matches this machine's zlib1g (unfixed in bookworm, CVSS 9.8). */
const ZLIB_ID = 'DEBIAN-CVE-2023-45853';
const ZLIB_CVE = 'CVE-2023-45853';
/** The glibc record fixed in 2.36-9+deb12u3, older than this machine's libc6. */
const GLIBC_ID = 'DSA-5514-1';

const sha256 = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A free loopback port (the registry's public URL must be known before it starts: scanners are told it). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The installed version of a Debian package on this machine, from its dpkg status. */
function installedVersion(status: string, name: string): string | undefined {
  for (const paragraph of status.split(/\n\s*\n/)) {
    if (new RegExp(`^Package: ${name}$`, 'm').test(paragraph)) {
      return /^Version: (.+)$/m.exec(paragraph)?.[1];
    }
  }
  return undefined;
}

interface BuiltImage {
  readonly digest: Digest;
  readonly manifest: Buffer;
  readonly blobs: { digest: string; bytes: Buffer }[];
}

interface Client {
  readonly name: string;
  readonly skip: string | false;
  /** Pulls `<host>/<name>` as `user`; never throws for a failed pull. */
  pull(name: string, user: User): Promise<RunResult>;
}

describe(
  'vulnerability scanning with real clients',
  { skip: skipIf(E2E_TARGET === 'distribution' && 'Distribution does not scan', missing('skopeo')) },
  () => {
    let server: TestRegistry;
    let url: string;
    let host: string;
    let work: string;
    let containers: ContainersEnv;
    let dockerd: RunningDockerd | undefined;
    let scanner: HarborScannerDouble;
    let dpkgStatus: string;
    let osRelease: Buffer;
    let pulls = 0;
    const images = new Map<string, BuiltImage>();

    const out = (r: RunResult): string => `${r.stdout}\n${r.stderr}`;
    const dockerSkip = skipIf(missing('dockerd', 'docker'), missingRoot('dockerd'));
    const clients: Client[] = [
      {
        name: 'docker',
        skip: dockerSkip,
        async pull(name, user) {
          assert.ok(dockerd);
          await dockerd.docker(['login', host, '-u', user, '--password-stdin'], { input: PASSWORDS[user] });
          const r = await dockerd.docker(['pull', `${host}/${name}`], { allowFailure: true });
          // The next pull of the same image must reach the registry again.
          await dockerd.docker(['rmi', '-f', `${host}/${name}`], { allowFailure: true });
          return r;
        },
      },
      {
        name: 'podman',
        skip: missing('podman'),
        async pull(name, user) {
          const r = await run(
            'podman',
            ['pull', '--tls-verify=false', '--creds', `${user}:${PASSWORDS[user]}`, `${host}/${name}`],
            { env: containers.env, allowFailure: true },
          );
          await run('podman', ['rmi', '-f', `${host}/${name}`], { env: containers.env, allowFailure: true });
          return r;
        },
      },
      {
        name: 'skopeo',
        skip: false,
        pull: (name, user) =>
          run(
            'skopeo',
            [
              'copy',
              '--src-tls-verify=false',
              '--src-creds',
              `${user}:${PASSWORDS[user]}`,
              `docker://${host}/${name}`,
              `oci:${path.join(work, `skopeo-${++pulls}`)}:pulled`,
            ],
            { env: containers.env, allowFailure: true },
          ),
      },
    ];

    /** One test per client: `${title} (${client})`. */
    function eachClient(
      title: string,
      body: (client: Client, t: TestContext) => Promise<void>,
      options: { todo?: string } = {},
    ): void {
      for (const client of clients) {
        it(`${title} (${client.name})`, { skip: client.skip, ...options }, (t) => body(client, t));
      }
    }

    const mustPull = async (client: Client, name: string, user: User): Promise<void> => {
      const r = await client.pull(name, user);
      assert.equal(r.code, 0, `${client.name} pull of ${name} as ${user} must succeed:\n${out(r)}`);
    };
    const mustRefuse = async (
      client: Client,
      t: TestContext,
      name: string,
      user: User,
      reason: RegExp,
    ): Promise<void> => {
      const r = await client.pull(name, user);
      assert.notEqual(r.code, 0, `${client.name} pull of ${name} as ${user} must fail:\n${out(r)}`);
      assert.match(out(r), reason, `${client.name} output`);
      const lines = out(r)
        .split('\n')
        .filter((l) => l.trim() !== '');
      t.diagnostic(`${client.name}: ${lines.slice(-2).join(' | ').slice(0, 600)}`);
    };

    const imageOf = (name: string): BuiltImage => {
      const image = images.get(name);
      assert.ok(image, name);
      return image;
    };

    /** GET (or HEAD) a manifest with `authorization` and every manifest type accepted. */
    const getManifest = (
      name: string,
      ref: string,
      authorization: string,
      method = 'GET',
    ): Promise<Response> =>
      fetch(`${url}/v2/${name}/manifests/${ref}`, {
        method,
        headers: { authorization, accept: MANIFEST_ACCEPT },
      });

    /** Calls the admin API as `admin` with a JSON body; asserts the status. */
    const adminApi = async (
      method: string,
      apiPath: string,
      body?: unknown,
      status = 200,
    ): Promise<unknown> => {
      const res = await fetch(`${url}/api/v1${apiPath}`, {
        method,
        headers: {
          authorization: basic('admin'),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      assert.equal(res.status, status, `${method} ${apiPath}: ${res.status} ${text}`);
      return text === '' ? null : (JSON.parse(text) as unknown);
    };
    const setPolicy = (namespace: string, policy: Record<string, unknown>): Promise<unknown> =>
      adminApi('PUT', `/namespaces/${namespace}/scanning/policy`, policy);

    /** Builds the Debian 12 image of this machine's package data; `extra` makes its layer (and digest) unique. */
    async function buildImage(extra: string): Promise<BuiltImage> {
      const layerPath = await buildLayer(
        work,
        [
          ['etc/os-release', osRelease],
          ['var/lib/dpkg/status', dpkgStatus],
          ['etc/image-name', `${extra}\n`],
        ],
        { compression: 'gzip' },
      );
      const layer = await readFile(layerPath);
      const config = Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: {},
          rootfs: { type: 'layers', diff_ids: [sha256(gunzipSync(layer))] },
        }),
      );
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
          layers: [{ mediaType: OCI_LAYER_GZIP, digest: sha256(layer), size: layer.length }],
        }),
      );
      return {
        digest: sha256(manifest) as Digest,
        manifest,
        blobs: [
          { digest: sha256(config), bytes: config },
          { digest: sha256(layer), bytes: layer },
        ],
      };
    }

    /** Pushes `image` to `name:tag` as `ci` over HTTP (monolithic blob uploads, then the manifest). */
    async function push(name: string, tag: string, image: BuiltImage): Promise<void> {
      for (const blob of image.blobs) {
        const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
          method: 'POST',
          headers: { authorization: basic('ci'), 'content-type': 'application/octet-stream' },
          body: blob.bytes,
        });
        assert.equal(res.status, 201, `blob upload to ${name}: ${res.status} ${await res.text()}`);
      }
      const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, {
        method: 'PUT',
        headers: { authorization: basic('ci'), 'content-type': OCI_MANIFEST },
        body: image.manifest,
      });
      assert.equal(res.status, 201, `manifest PUT ${name}:${tag}: ${res.status} ${await res.text()}`);
      assert.equal(res.headers.get('docker-content-digest'), image.digest);
    }

    /** Polls the stored scan of `digest` until `done` (failing on `failed`/`unsupported` or after 30 s). */
    async function scanDone(digest: Digest): Promise<StoredScan> {
      const deadline = Date.now() + 30_000;
      let last: StoredScan | null = null;
      while (Date.now() < deadline) {
        last = await server.services.scanning.scanOf(digest);
        if (last?.status === 'done' && last.report !== null) return last;
        assert.ok(
          last === null || last.status === 'queued' || last.status === 'scanning',
          `scan of ${digest}: ${last?.status} ${last?.error}`,
        );
        await sleep(100);
      }
      assert.fail(`scan of ${digest} not done after 30 s (last: ${JSON.stringify(last?.status)})`);
    }

    before(async () => {
      const port = await freePort();
      host = `127.0.0.1:${port}`;
      url = `http://${host}`;
      server = await createTestRegistry({
        'auth.mode': 'token',
        publicUrl: url,
        'jobs.pollInterval': '200ms',
      });
      const auth = server.services.auth.store;
      await auth.createUser({
        username: 'admin',
        passwordHash: await hashPassword(PASSWORDS.admin),
        isAdmin: true,
      });
      for (const user of ['ci', 'dev'] as const) {
        await auth.createUser({
          username: user,
          passwordHash: await hashPassword(PASSWORDS[user]),
          isAdmin: false,
        });
      }
      for (const namespace of ['scan', 'ext', 'sbom']) {
        await auth.createNamespace({ name: namespace, visibility: 'private', description: '' });
        await auth.setMember(namespace, 'user', 'ci', 'developer');
        await auth.setMember(namespace, 'user', 'dev', 'reader');
      }
      // createTestRegistry builds the app without background jobs; the scan and rematch jobs run here as
      // createApp runs them when `jobs.enabled`: handlers registered, runner and event relay started.
      server.services.scanning.register(server.services.jobs);
      server.services.jobs.start();
      server.services.relay.start();
      await server.app.listen({ host: '127.0.0.1', port });

      work = await tempDir('scanning');
      containers = await containersEnv([host]);
      dpkgStatus = await readFile('/var/lib/dpkg/status', 'utf8');
      osRelease = await readFile('/etc/os-release');
      scanner = await startHarborScanner({
        report: (request) => ({
          generated_at: new Date().toISOString(),
          artifact: { ...request.body.artifact },
          scanner: { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.58.1' },
          severity: 'High',
          vulnerabilities: [
            {
              id: 'CVE-2023-4911',
              package: 'libc6',
              version: '2.36-9+deb12u1',
              fix_version: '2.36-9+deb12u3',
              severity: 'High',
              description: "A buffer overflow in the GNU C Library's dynamic loader ld.so.",
              links: ['https://avd.aquasec.com/nvd/cve-2023-4911'],
            },
            {
              id: 'CVE-2011-3374',
              package: 'apt',
              version: '2.6.1',
              fix_version: '',
              severity: 'Negligible',
              description: 'apt-key in apt, all versions, does not correctly validate gpg keys.',
              links: null,
            },
          ],
        }),
      });
      if (dockerSkip === false) dockerd = await startDockerd();
    });

    after(async () => {
      await dockerd?.stop();
      await containers?.cleanup();
      await scanner?.close();
      await server?.services.relay.stop();
      await server?.services.jobs.stop();
      await server?.dispose();
      if (work) await removeTree(work);
    });

    // --- 1. scan on push ---------------------------------------------------------------------------------
    it('1. a pushed image of this machine’s packages is scanned by the push-triggered job', async () => {
      const image = await buildImage('scan/app');
      images.set('scan/app', image);
      await push('scan/app', 'v1', image);
      const scan = await scanDone(image.digest);
      assert.equal(scan.scanner, 'berth');
      const report = scan.report!;
      assert.equal(report.os?.id, 'debian');
      assert.equal(report.os?.versionId, '12');
      const libc = report.packages.find((p) => p.name === 'libc6');
      assert.ok(libc, 'libc6 in the inventory');
      assert.equal(libc.version, installedVersion(dpkgStatus, 'libc6'));
      assert.ok(report.packages.some((p) => p.name === 'zlib1g'));
      assert.deepEqual(report.findings, [], 'the database is empty');
    });

    // --- 2. database import --------------------------------------------------------------------------------
    it('2. importing the OSV fixtures rematches the report: the zlib record, not the fixed glibc one', async () => {
      const records = await Promise.all(
        [`${ZLIB_ID}.json`, `${GLIBC_ID}.json`, 'DSA-3029-1.json'].map(
          async (file) => JSON.parse(await readFile(path.join(FIXTURES, file), 'utf8')) as unknown,
        ),
      );
      const summary = (await adminApi('POST', '/vulndb/import?source=fixtures', records)) as {
        added: number;
        revision: number;
      };
      assert.equal(summary.added, 3);
      assert.ok(summary.revision > 0);

      const digest = imageOf('scan/app').digest;
      // The stored row as the rematch job leaves it (read from the store: `scanOf` would rematch on reading).
      const deadline = Date.now() + 20_000;
      let scan = await server.services.scanStore.getScan(digest);
      while (scan?.dbRevision !== summary.revision && Date.now() < deadline) {
        await sleep(100);
        scan = await server.services.scanStore.getScan(digest);
      }
      assert.equal(scan?.dbRevision, summary.revision, 'rematched by the job the import enqueued');
      const findings = scan.report!.findings;
      const zlib = findings.filter((f) => f.id === ZLIB_ID);
      assert.ok(zlib.length > 0, `zlib finding in ${JSON.stringify(findings.map((f) => f.id))}`);
      assert.ok(zlib.every((f) => f.severity === 'critical' && f.fixedVersion === null));
      assert.ok(zlib.some((f) => f.package.name === 'zlib1g'));
      assert.equal(
        findings.some((f) => f.id === GLIBC_ID),
        false,
        'libc6 is newer than the fix',
      );
      // The admin API's view agrees.
      const view = JSON.stringify(
        await adminApi('GET', `/repositories/${encodeURIComponent('scan/app')}/scan?reference=v1`),
      );
      assert.ok(view.includes(ZLIB_ID));
      assert.equal(view.includes(GLIBC_ID), false);
    });

    // --- 3. enforce / allowlist / warn ---------------------------------------------------------------------
    it('3. enforce, severity high: a reader’s GET is refused with 412 DENIED naming the vulnerability', async () => {
      await setPolicy('scan', { mode: 'enforce', severity: 'high' });
      const digest = imageOf('scan/app').digest;
      const res = await getManifest('scan/app', 'v1', basic('dev'));
      assert.equal(res.status, 412);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]?.code, 'DENIED');
      assert.match(body.errors[0]?.message ?? '', new RegExp(`scan/app@${digest}.*${ZLIB_ID}`));
      assert.equal((await getManifest('scan/app', 'v1', basic('dev'), 'HEAD')).status, 412);
      assert.equal((await getManifest('scan/app', 'v1', basic('ci'))).status, 200, 'a pusher bypasses');

      const audit = await server.services.auth.store.queryAudit({ action: 'pull', limit: 50 });
      const refusal = audit.items.find(
        (a) => a.target === `scan/app@${digest}` && a.success === false && JSON.stringify(a).includes('dev'),
      );
      assert.ok(refusal, `the refusal is audited: ${JSON.stringify(audit.items).slice(0, 800)}`);
      assert.match(JSON.stringify(refusal), /vulnerable image/);
    });

    eachClient('3. a reader’s pull of the vulnerable image is refused', async (client, t) => {
      await mustRefuse(client, t, 'scan/app:v1', 'dev', new RegExp(ZLIB_ID));
    });

    /** A bearer token from the token service for `user` with `scope`. */
    const tokenFor = async (user: User, scope: string): Promise<string> => {
      const res = await fetch(`${url}/auth/token?scope=${encodeURIComponent(scope)}`, {
        headers: { authorization: basic(user) },
      });
      assert.equal(res.status, 200, `token for ${scope}`);
      return ((await res.json()) as { token: string }).token;
    };

    it('3. a pusher holding a pull and push token bypasses the refusal (HTTP)', async () => {
      const token = await tokenFor('ci', 'repository:scan/app:pull,push');
      assert.equal((await getManifest('scan/app', 'v1', `Bearer ${token}`)).status, 200);
      const reader = await tokenFor('dev', 'repository:scan/app:pull,push');
      assert.equal((await getManifest('scan/app', 'v1', `Bearer ${reader}`)).status, 412);
    });

    // Clients pulling ask the token service for `pull` only: the bypass asks whether the principal may push by its
    // rights, not by the token's scope.
    it('3. a pusher holding a pull-only token bypasses the refusal (HTTP)', async () => {
      const token = await tokenFor('ci', 'repository:scan/app:pull');
      assert.equal((await getManifest('scan/app', 'v1', `Bearer ${token}`)).status, 200);
    });

    eachClient('3. a pusher pulls the vulnerable image (bypass)', async (client) => {
      await mustPull(client, 'scan/app:v1', 'ci');
    });

    it('3. allowlist: the finding id unlocks the pull; an expired entry does not', async () => {
      const finding = (await server.services.scanning.scanOf(
        imageOf('scan/app').digest,
      ))!.report!.findings.find((f) => f.id === ZLIB_ID)!;
      assert.ok(finding);
      // The OSV record names CVE-2023-45853 as `upstream`: the finding answers to it as an alias.
      assert.deepEqual(finding.aliases, [ZLIB_CVE]);
      const expired = new Date(Date.now() - 60_000).toISOString();
      await setPolicy('scan', {
        mode: 'enforce',
        severity: 'high',
        allowlist: [{ id: ZLIB_ID, expiresAt: expired, reason: 'accepted until yesterday' }],
      });
      assert.equal((await getManifest('scan/app', 'v1', basic('dev'))).status, 412, 'expired entry');
      const future = new Date(Date.now() + 86_400_000).toISOString();
      await setPolicy('scan', {
        mode: 'enforce',
        severity: 'high',
        allowlist: [{ id: ZLIB_ID.toLowerCase(), expiresAt: future, reason: 'MiniZip is not shipped' }],
      });
      assert.equal((await getManifest('scan/app', 'v1', basic('dev'))).status, 200, 'allowlisted');
    });

    eachClient('3. an allowlisted finding no longer blocks a reader’s pull', async (client) => {
      await mustPull(client, 'scan/app:v1', 'dev');
    });

    it('3. allowlisting the CVE id (the record’s `upstream`) unlocks the pull', async () => {
      await setPolicy('scan', { mode: 'enforce', severity: 'high', allowlist: [{ id: ZLIB_CVE }] });
      assert.equal((await getManifest('scan/app', 'v1', basic('dev'))).status, 200);
    });

    it('3. warn: the manifest is served with a Warning: 199 header naming the vulnerability', async () => {
      await setPolicy('scan', { mode: 'warn', severity: 'high' });
      const digest = imageOf('scan/app').digest;
      for (const method of ['GET', 'HEAD']) {
        const res = await getManifest('scan/app', 'v1', basic('dev'), method);
        assert.equal(res.status, 200, method);
        assert.equal(res.headers.get('docker-content-digest'), digest);
        assert.equal(
          res.headers.get('warning'),
          `199 berth "image scan/app@${digest} has 1 vulnerability of severity high or higher: ${ZLIB_ID}"`,
          method,
        );
      }
    });

    eachClient('3. warn: a reader pulls the vulnerable image', async (client) => {
      await mustPull(client, 'scan/app:v1', 'dev');
    });

    // --- 4. external scanner -------------------------------------------------------------------------------
    it('4. an external scanner scans with a one-repository pull token; its findings are the report', async () => {
      await adminApi('PUT', '/scanners/ext', { url: scanner.url });
      await setPolicy('ext', { scanner: 'ext' });
      const image = await buildImage('ext/app');
      images.set('ext/app', image);
      await push('ext/app', 'v1', image);
      const scan = await scanDone(image.digest);
      assert.equal(scan.scanner, 'ext');

      const requests = scanner.scanRequests.filter((r) => r.body.artifact.digest === image.digest);
      assert.equal(requests.length, 1, 'one scan request for the pushed digest');
      const request = requests[0]!;
      assert.equal(request.body.artifact.repository, 'ext/app');
      assert.equal(request.registryUrl, url);
      assert.ok(request.bearerToken, `a bearer token: ${request.body.registry.authorization}`);
      const bearer = `Bearer ${request.bearerToken}`;
      const claims = JSON.parse(
        Buffer.from(request.bearerToken.split('.')[1] ?? '', 'base64url').toString('utf8'),
      ) as { sub?: string; access?: unknown };
      assert.equal(claims.sub, 'service:scanner/ext');
      assert.deepEqual(claims.access, [{ type: 'repository', name: 'ext/app', actions: ['pull'] }]);

      const own = await getManifest('ext/app', image.digest, bearer);
      assert.equal(own.status, 200, 'the token pulls the scanned repository');
      assert.equal(own.headers.get('docker-content-digest'), image.digest);
      const layer = image.blobs[1]!;
      const blob = await fetch(`${url}/v2/ext/app/blobs/${layer.digest}`, {
        headers: { authorization: bearer },
      });
      assert.equal(blob.status, 200);
      assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), layer.digest);
      const other = await getManifest('scan/app', 'v1', bearer);
      assert.ok([401, 403].includes(other.status), `another repository: ${other.status}`);
      const upload = await fetch(`${url}/v2/ext/app/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: bearer },
      });
      assert.ok([401, 403].includes(upload.status), `no push with the token: ${upload.status}`);

      const report = scan.report!;
      // The report names the adapter's scanner (its metadata); the stored scan the registered name.
      assert.deepEqual(report.scanner, { name: 'Trivy', vendor: 'Aqua Security', version: 'v0.58.1' });
      assert.deepEqual(report.findings.map((f) => [f.id, f.package.name, f.severity]).sort(), [
        ['CVE-2011-3374', 'apt', 'low'],
        ['CVE-2023-4911', 'libc6', 'high'],
      ]);
    });

    it('4. an enforcing policy refuses the pull on the external findings (HTTP)', async () => {
      await setPolicy('ext', { scanner: 'ext', mode: 'enforce', severity: 'high' });
      const res = await getManifest('ext/app', 'v1', basic('dev'));
      assert.equal(res.status, 412);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      assert.match(body.errors[0]?.message ?? '', /: CVE-2023-4911$/);
    });

    eachClient('4. a reader’s pull is refused on the external scanner’s findings', async (client, t) => {
      await mustRefuse(client, t, 'ext/app:v1', 'dev', /CVE-2023-4911/);
    });

    // --- 5. SBOM referrers ---------------------------------------------------------------------------------
    it('5. attachSboms: SPDX 2.3 and CycloneDX 1.6 referrers naming the image’s packages', async () => {
      await setPolicy('sbom', { attachSboms: true });
      const image = await buildImage('sbom/app');
      images.set('sbom/app', image);
      await push('sbom/app', 'v1', image);
      await scanDone(image.digest);

      type Referrers = { manifests: { digest: string; artifactType?: string; mediaType: string }[] };
      const deadline = Date.now() + 20_000;
      let list: Referrers = { manifests: [] };
      while (Date.now() < deadline) {
        const res = await fetch(`${url}/v2/sbom/app/referrers/${image.digest}`, {
          headers: { authorization: basic('dev') },
        });
        assert.equal(res.status, 200);
        list = (await res.json()) as Referrers;
        if (list.manifests.length >= 2) break;
        await sleep(100);
      }
      assert.deepEqual(list.manifests.map((m) => m.artifactType).sort(), [SPDX_JSON, CYCLONEDX_JSON].sort());

      const libcVersion = installedVersion(dpkgStatus, 'libc6');
      assert.ok(libcVersion);
      for (const referrer of list.manifests) {
        const res = await getManifest('sbom/app', referrer.digest, basic('dev'));
        assert.equal(res.status, 200);
        const manifest = (await res.json()) as {
          subject?: { digest: string };
          layers: { mediaType: string; digest: string }[];
        };
        assert.equal(manifest.subject?.digest, image.digest);
        assert.equal(manifest.layers.length, 1);
        const layer = manifest.layers[0]!;
        assert.equal(layer.mediaType, referrer.artifactType);
        const blob = await fetch(`${url}/v2/sbom/app/blobs/${layer.digest}`, {
          headers: { authorization: basic('dev') },
        });
        assert.equal(blob.status, 200);
        const bytes = Buffer.from(await blob.arrayBuffer());
        assert.equal(sha256(bytes), layer.digest);
        const document = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
        if (referrer.artifactType === SPDX_JSON) {
          assert.equal(document.spdxVersion, 'SPDX-2.3');
          const packages = document.packages as { name: string; versionInfo?: string }[];
          assert.ok(
            packages.some((p) => p.name === 'libc6' && p.versionInfo === libcVersion),
            'SPDX names libc6 with its installed version',
          );
        } else {
          assert.equal(document.bomFormat, 'CycloneDX');
          assert.equal(document.specVersion, '1.6');
          const components = document.components as { name: string; version?: string }[];
          assert.ok(
            components.some((c) => c.name === 'libc6' && c.version === libcVersion),
            'CycloneDX names libc6 with its installed version',
          );
        }
      }
    });

    eachClient('5. an image with SBOM referrers pulls as before', async (client) => {
      await mustPull(client, 'sbom/app:v1', 'dev');
    });

    it('6. /metrics counts the scans by scanner and outcome, and the refused pulls by reason', async () => {
      const res = await fetch(`${url}/metrics`);
      assert.equal(res.status, 200);
      const text = await res.text();
      const value = (series: string): number => {
        const line = text.split('\n').find((l) => l.startsWith(`${series} `));
        return line === undefined ? 0 : Number(line.slice(series.length + 1));
      };
      assert.ok(value('berth_scans_total{scanner="berth",outcome="done"}') >= 2, 'built-in scans');
      assert.ok(value('berth_scans_total{scanner="ext",outcome="done"}') >= 1, 'external scans');
      assert.ok(value('berth_scans_total{scanner="berth",outcome="unsupported"}') >= 1, 'SBOM referrers');
      assert.ok(value('berth_scan_seconds_total{scanner="berth"}') > 0);
      // Each client's refused pull, and the HTTP refusals, counted once per 412 response.
      assert.ok(value('berth_pulls_refused_total{reason="vulnerable image"}') >= 6, 'refused pulls');
    });
  },
);
