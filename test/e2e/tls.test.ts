/**
 * HTTPS with a real client: `berth cert` makes a CA and a server certificate, `berth serve` gets them through
 * BERTH_TLS_CERTIFICATE/BERTH_TLS_KEY, and skopeo (containers/image, Go's crypto/tls with full verification)
 * pushes an OCI layout and pulls it back trusting the CA through `--dest-cert-dir`/`--src-cert-dir`. Without
 * the CA skopeo must fail on the certificate. With `tls.clientAuth: require` skopeo needs a client
 * certificate from `berth cert --client` in its cert dir (as NAME.cert + NAME.key, containers/image's names).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { containersEnv, missing, removeTree, run, tempDir, type ContainersEnv } from '../helpers/clients.ts';
import { layoutDescriptor, writeImageLayout, type ImageLayout } from '../helpers/oci-layout.ts';
import { PROJECT_ROOT, startBerth, type RunningBerth } from '../helpers/server.ts';

const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

/** HEAD a manifest over HTTPS trusting `ca`; returns status and Docker-Content-Digest. */
function headManifest(url: string, ca: Buffer): Promise<{ status: number; digest: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'HEAD', ca, headers: { accept: MANIFEST_ACCEPT } }, (res) => {
      res.resume();
      const digest = res.headers['docker-content-digest'];
      resolve({ status: res.statusCode ?? 0, digest: typeof digest === 'string' ? digest : undefined });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS with skopeo', { skip: missing('skopeo') }, () => {
  let work: string;
  let certs: string;
  /** Holds only ca.crt: containers/image reads every *.crt there as a CA and every *.key as a client key. */
  let trustDir: string;
  let ca: Buffer;
  let registry: RunningBerth;
  let containers: ContainersEnv;
  let image: ImageLayout;

  const skopeo = (args: string[], allowFailure = false) =>
    run('skopeo', args, { env: containers.env, allowFailure, timeoutMs: 120_000 });

  before(async () => {
    work = await tempDir('tls');
    certs = path.join(work, 'certs');
    await run(
      process.execPath,
      ['--import', 'tsx', 'src/main.ts', 'cert', '--out', certs, '--client', 'robot'],
      {
        cwd: PROJECT_ROOT,
      },
    );
    trustDir = path.join(work, 'trust');
    await mkdir(trustDir);
    await copyFile(path.join(certs, 'ca.crt'), path.join(trustDir, 'ca.crt'));
    ca = await readFile(path.join(certs, 'ca.crt'));
    registry = await startBerth({
      env: {
        BERTH_TLS_CERTIFICATE: path.join(certs, 'server.crt'),
        BERTH_TLS_KEY: path.join(certs, 'server.key'),
      },
    });
    // No insecure hosts: registries.conf leaves TLS verification on for the registry.
    containers = await containersEnv([]);
    image = await writeImageLayout(path.join(work, 'src'), { tag: 'v1', layers: 2, layerSize: 256 * 1024 });
  });

  after(async () => {
    await registry?.dispose();
    await containers?.cleanup();
    if (work) await removeTree(work);
  });

  it('listens on https://', () => {
    assert.match(registry.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(registry.output(), /"msg":"serving HTTPS"/);
  });

  it('pushes and pulls back an image with the CA in --dest-cert-dir / --src-cert-dir', async () => {
    const ref = `docker://${registry.host}/e2e/tls/image:v1`;
    await skopeo(['copy', '--dest-cert-dir', trustDir, '--dest-tls-verify=true', image.reference, ref]);
    const head = await headManifest(`${registry.url}/v2/e2e/tls/image/manifests/v1`, ca);
    assert.equal(head.status, 200);
    assert.equal(head.digest, image.manifestDigest);

    const back = path.join(work, 'back');
    await skopeo(['copy', '--src-cert-dir', trustDir, '--src-tls-verify=true', ref, `oci:${back}:v1`]);
    assert.equal((await layoutDescriptor(back, 'v1')).digest, image.manifestDigest);
  });

  it('fails on the certificate when skopeo does not trust the CA', async () => {
    const r = await skopeo(
      ['copy', '--dest-tls-verify=true', image.reference, `docker://${registry.host}/e2e/tls/untrusted:v1`],
      true,
    );
    assert.notEqual(r.code, 0, 'the push must fail');
    assert.match(r.stderr, /x509: certificate signed by unknown authority/);
    const head = await headManifest(`${registry.url}/v2/e2e/tls/untrusted/manifests/v1`, ca);
    assert.equal(head.status, 404, 'nothing was pushed');
  });

  describe('with tls.clientAuth require', () => {
    let mtls: RunningBerth;
    let clientDir: string;

    before(async () => {
      mtls = await startBerth({
        env: {
          BERTH_TLS_CERTIFICATE: path.join(certs, 'server.crt'),
          BERTH_TLS_KEY: path.join(certs, 'server.key'),
          BERTH_TLS_CLIENT_CA: path.join(certs, 'ca.crt'),
          BERTH_TLS_CLIENT_AUTH: 'require',
        },
      });
      clientDir = path.join(work, 'client');
      await mkdir(clientDir);
      await copyFile(path.join(certs, 'ca.crt'), path.join(clientDir, 'ca.crt'));
      await copyFile(path.join(certs, 'robot.crt'), path.join(clientDir, 'robot.cert'));
      await copyFile(path.join(certs, 'robot.key'), path.join(clientDir, 'robot.key'));
    });
    after(async () => mtls?.dispose());

    it('refuses skopeo without a client certificate', async () => {
      const r = await skopeo(
        ['copy', '--dest-cert-dir', trustDir, image.reference, `docker://${mtls.host}/e2e/tls/nocert:v1`],
        true,
      );
      assert.notEqual(r.code, 0);
      // TLS 1.3: the server's alert arrives after the client's handshake; older stacks see a reset or EOF.
      assert.match(
        r.stderr,
        /tls: certificate required|bad certificate|handshake failure|connection reset|EOF/,
      );
    });

    it('accepts skopeo with a client certificate from berth cert --client', async () => {
      const ref = `docker://${mtls.host}/e2e/tls/mtls:v1`;
      await skopeo(['copy', '--dest-cert-dir', clientDir, image.reference, ref]);
      const back = path.join(work, 'back-mtls');
      await skopeo(['copy', '--src-cert-dir', clientDir, ref, `oci:${back}:v1`]);
      assert.equal((await layoutDescriptor(back, 'v1')).digest, image.manifestDigest);
    });
  });
});
