/**
 * Signature enforcement with real clients: namespace `signed` requires images signed by the cosign key `ci`
 * (`mode: enforce`), namespace `warned` only warns. Access control is on (`auth.mode: basic`): `ci` is a developer
 * (may push) in both namespaces, `dev` a reader (may pull only). Images are pushed by `ci` with skopeo; cosign
 * signatures are made as cosign makes them (test/helpers/signing.ts) and pushed over HTTP as `ci`.
 *
 * With docker (a private dockerd), podman, skopeo and ctr (a private containerd), each pulling as `dev`:
 * 1. an unsigned image is refused (non-zero exit, the registry's reason in the client's output when it prints it);
 * 2. once signed under cosign's tag `sha256-<hex>.sig`, the same image pulls;
 * 3. `ci`, who may push, pulls an unsigned image (a signer must read what it signs);
 * 4. a multi-platform index whose index alone is signed pulls (its children pass as children of a signed index);
 *    an unsigned index of unsigned children is refused;
 * 5. a signature pushed as an OCI 1.1 referrer (`subject`) makes its image pullable;
 * 6. a signature by a key the namespace does not trust does not, nor a trusted signature of another image;
 * 7. under `warn`, an unsigned image pulls and the manifest response carries a `Warning` header.
 * Also: an unsigned image that names a `subject` or calls itself a cosign signature (clients run it all the same)
 * is refused; rotating the trusted key re-decides every image.
 *
 * What the clients print on a refusal: docker, podman and skopeo show the registry's message (docker prefixed
 * with "pull access denied ... may require 'docker login'", its wording for any DENIED code); ctr resolves with
 * HEAD, whose 412 carries no body, and prints only "412 Precondition Failed".
 *
 * The registry runs in this process (the real app listening on a loopback port) so the test configures trust
 * through `services.signatures.setTrust`, as the admin API does.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { hashPassword } from '../../src/auth/passwords.ts';
import { createTestRegistry, type TestRegistry } from '../helpers/app.ts';
import {
  MANIFEST_ACCEPT,
  containersEnv,
  missing,
  missingRoot,
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
import { E2E_TARGET } from '../helpers/distribution.ts';
import {
  writeImageLayout,
  writeIndexLayout,
  type ImageLayout,
  type IndexLayout,
} from '../helpers/oci-layout.ts';
import {
  newSigningKey,
  sigManifest,
  sigTag,
  signatureLayer,
  simpleSigningPayload,
} from '../helpers/cosign-signature.ts';
import {
  COSIGN_ARTIFACT_TYPE,
  pushBlob,
  pushManifest,
  signAsReferrer,
  signWithTag,
  type PushTarget,
  type SignedDescriptor,
} from '../helpers/signing.ts';

const PASSWORDS = { ci: 'ci-signing-password-1', dev: 'dev-signing-password-1' } as const;
type User = keyof typeof PASSWORDS;
const basic = (user: User): string => `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}`;

/** The registry's reason for a refused pull, as SignatureRequiredError words it. */
const NOT_SIGNED = /is not signed by a trusted signer/;

interface Client {
  readonly name: string;
  /** Why this client's cases are skipped, or false. */
  readonly skip: string | false;
  /** Pulls `<host>/<name>` as `user`; never throws for a failed pull. */
  pull(name: string, user: User): Promise<RunResult>;
  /**
   * What the client shows when the registry refuses a pull with 412 and SignatureRequiredError's JSON body:
   * the registry's message where the client prints it.
   */
  readonly refusal: RegExp;
}

describe(
  'signature enforcement with real clients',
  {
    skip: skipIf(
      E2E_TARGET === 'distribution' && 'Distribution does not verify signatures',
      missing('skopeo'),
    ),
  },
  () => {
    let server: TestRegistry;
    let url: string;
    let host: string;
    let work: string;
    let containers: ContainersEnv;
    let dockerd: RunningDockerd | undefined;
    let containerd: RunningContainerd | undefined;
    let pulls = 0;
    const trusted = newSigningKey();
    const untrusted = newSigningKey();
    const images = new Map<string, ImageLayout>();
    const indexes = new Map<string, IndexLayout>();

    const asCi = (): PushTarget => ({ url, authorization: basic('ci') });
    const out = (r: RunResult): string => `${r.stdout}\n${r.stderr}`;
    const skopeo = (args: string[], allowFailure = false): Promise<RunResult> =>
      run('skopeo', args, { env: containers.env, allowFailure });

    const dockerSkip = skipIf(missing('dockerd', 'docker'), missingRoot('dockerd'));
    const ctrSkip = skipIf(missing('containerd', 'ctr'), missingRoot('containerd'));
    const clients: Client[] = [
      {
        name: 'docker',
        skip: dockerSkip,
        refusal: NOT_SIGNED,
        async pull(name, user) {
          assert.ok(dockerd);
          await dockerd.docker(['login', host, '-u', user, '--password-stdin'], { input: PASSWORDS[user] });
          return dockerd.docker(['pull', `${host}/${name}`], { allowFailure: true });
        },
      },
      {
        name: 'podman',
        skip: missing('podman'),
        refusal: NOT_SIGNED,
        pull: (name, user) =>
          run(
            'podman',
            ['pull', '--tls-verify=false', '--creds', `${user}:${PASSWORDS[user]}`, `${host}/${name}`],
            { env: containers.env, allowFailure: true },
          ),
      },
      {
        name: 'skopeo',
        skip: false,
        refusal: NOT_SIGNED,
        pull: (name, user) =>
          skopeo(
            [
              'copy',
              '--src-tls-verify=false',
              '--src-creds',
              `${user}:${PASSWORDS[user]}`,
              `docker://${host}/${name}`,
              `oci:${path.join(work, `skopeo-${++pulls}`)}:pulled`,
            ],
            true,
          ),
      },
      {
        name: 'ctr',
        skip: ctrSkip,
        // containerd resolves a reference with HEAD, whose 412 has no body: ctr prints the status alone.
        refusal: /412 Precondition Failed/,
        pull(name, user) {
          assert.ok(containerd);
          return containerd.ctr(
            ['images', 'pull', '--plain-http', '--user', `${user}:${PASSWORDS[user]}`, `${host}/${name}`],
            { allowFailure: true },
          );
        },
      },
    ];

    /** One test per client: `${title} (${client})`. */
    function eachClient(title: string, body: (client: Client, t: TestContext) => Promise<void>): void {
      for (const client of clients) {
        it(`${title} (${client.name})`, { skip: client.skip }, (t) => body(client, t));
      }
    }

    const mustPull = async (client: Client, name: string, user: User): Promise<void> => {
      const r = await client.pull(name, user);
      assert.equal(r.code, 0, `${client.name} pull of ${name} as ${user} must succeed:\n${out(r)}`);
    };
    /** Pulls and expects the refusal; what the client printed goes to the test's diagnostics. */
    const mustRefuse = async (client: Client, t: TestContext, name: string, user: User): Promise<void> => {
      const r = await client.pull(name, user);
      assert.notEqual(r.code, 0, `${client.name} pull of ${name} as ${user} must fail:\n${out(r)}`);
      assert.match(out(r), client.refusal, `${client.name} output`);
      const lines = out(r)
        .split('\n')
        .filter((l) => l.trim() !== '');
      t.diagnostic(`${client.name}: ${lines.slice(-2).join(' | ').slice(0, 600)}`);
    };

    /** GET (or HEAD) a manifest as `user` with every manifest type accepted. */
    const getManifest = (name: string, ref: string, user: User, method = 'GET'): Promise<Response> =>
      fetch(`${url}/v2/${name}/manifests/${ref}`, {
        method,
        headers: { authorization: basic(user), accept: MANIFEST_ACCEPT },
      });

    const imageOf = (tag: string): ImageLayout => {
      const image = images.get(tag);
      assert.ok(image, tag);
      return image;
    };
    const indexOf = (tag: string): IndexLayout => {
      const index = indexes.get(tag);
      assert.ok(index, tag);
      return index;
    };
    const descriptorOf = (image: ImageLayout | IndexLayout): SignedDescriptor => image.descriptor;

    before(async () => {
      server = await createTestRegistry({ 'auth.mode': 'basic' });
      const auth = server.services.auth.store;
      for (const user of ['ci', 'dev'] as const) {
        await auth.createUser({
          username: user,
          passwordHash: await hashPassword(PASSWORDS[user]),
          isAdmin: false,
        });
      }
      for (const namespace of ['signed', 'warned']) {
        await auth.createNamespace({ name: namespace, visibility: 'private', description: '' });
        await auth.setMember(namespace, 'user', 'ci', 'developer');
        await auth.setMember(namespace, 'user', 'dev', 'reader');
      }
      await server.app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = server.app.server.address() as AddressInfo;
      host = `127.0.0.1:${port}`;
      url = `http://${host}`;

      await server.services.signatures.setTrust(
        'signed',
        { mode: 'enforce', cosign: { keys: [{ name: 'ci', publicKey: trusted.publicKeyPem }] } },
        null,
      );
      await server.services.signatures.setTrust(
        'warned',
        { mode: 'warn', cosign: { keys: [{ name: 'ci', publicKey: trusted.publicKeyPem }] } },
        null,
      );

      work = await tempDir('signatures');
      containers = await containersEnv([host]);
      const layouts = path.join(work, 'layouts');
      const push = (reference: string, target: string, all = false): Promise<RunResult> =>
        skopeo([
          'copy',
          ...(all ? ['--all'] : []),
          '--dest-tls-verify=false',
          '--dest-creds',
          `ci:${PASSWORDS.ci}`,
          reference,
          `docker://${host}/${target}`,
        ]);
      for (const tag of ['v1', 'unsigned', 'referrer', 'untrusted', 'warned']) {
        const image = await writeImageLayout(layouts, { tag, layers: 1, layerSize: 64 * 1024 });
        images.set(tag, image);
        await push(image.reference, tag === 'warned' ? 'warned/app:v1' : `signed/app:${tag}`);
      }
      for (const tag of ['signed', 'unsigned']) {
        const index = await writeIndexLayout(layouts, { tag, layers: 1, layerSize: 64 * 1024 });
        indexes.set(tag, index);
        await push(index.reference, `signed/multi:${tag}`, true);
      }

      if (dockerSkip === false) dockerd = await startDockerd();
      if (ctrSkip === false) containerd = await startContainerd();
    });

    after(async () => {
      await dockerd?.stop();
      await containerd?.stop();
      await containers?.cleanup();
      await server?.dispose();
      if (work) await removeTree(work);
    });

    // ---------------------------------------------------------------------------------------------------
    it('refuses an unsigned image to a reader with 412 DENIED and the reason (HTTP)', async () => {
      const digest = imageOf('v1').manifestDigest;
      const res = await getManifest('signed/app', 'v1', 'dev');
      assert.equal(res.status, 412);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]?.code, 'DENIED');
      assert.equal(body.errors[0]?.message, `image signed/app@${digest} is not signed by a trusted signer`);
      assert.equal((await getManifest('signed/app', digest, 'dev', 'HEAD')).status, 412);
    });

    eachClient('1. an unsigned image is refused to a reader', async (client, t) => {
      await mustRefuse(client, t, 'signed/app:v1', 'dev');
    });

    it('signs signed/app:v1 under the cosign tag sha256-<hex>.sig', async () => {
      const image = imageOf('v1');
      const signature = await signWithTag(asCi(), {
        repository: 'signed/app',
        subject: descriptorOf(image),
        dockerReference: `${host}/signed/app`,
        key: trusted,
      });
      assert.equal(signature.tag, `sha256-${image.manifestDigest.slice('sha256:'.length)}.sig`);
      // The signature itself is an artifact: readable by the reader under enforce.
      assert.equal((await getManifest('signed/app', signature.tag, 'dev')).status, 200);
      const res = await getManifest('signed/app', 'v1', 'dev');
      assert.equal(res.status, 200, await res.text());
      assert.equal(res.headers.get('docker-content-digest'), image.manifestDigest);
      assert.equal(res.headers.get('warning'), null);
    });

    eachClient('2. the image signed under the .sig tag pulls', async (client) => {
      await mustPull(client, 'signed/app:v1', 'dev');
    });

    it('a reader still cannot fetch the unsigned image, the pusher can (HTTP)', async () => {
      assert.equal((await getManifest('signed/app', 'unsigned', 'dev')).status, 412);
      const res = await getManifest('signed/app', 'unsigned', 'ci');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), imageOf('unsigned').manifestDigest);
    });

    eachClient('3. a pusher pulls an unsigned image (bypass)', async (client) => {
      await mustPull(client, 'signed/app:unsigned', 'ci');
    });

    it('signs the index signed/multi:signed only (not its children)', async () => {
      const index = indexOf('signed');
      await signWithTag(asCi(), {
        repository: 'signed/multi',
        subject: descriptorOf(index),
        dockerReference: `${host}/signed/multi`,
        key: trusted,
      });
      assert.equal((await getManifest('signed/multi', 'signed', 'dev')).status, 200);
      for (const child of index.children) {
        const res = await getManifest('signed/multi', child.manifestDigest, 'dev');
        assert.equal(res.status, 200, `child ${child.manifestDigest} of a signed index`);
      }
      const unsigned = indexOf('unsigned');
      assert.equal((await getManifest('signed/multi', 'unsigned', 'dev')).status, 412);
      for (const child of unsigned.children) {
        assert.equal((await getManifest('signed/multi', child.manifestDigest, 'dev')).status, 412);
      }
    });

    eachClient('4a. a signed multi-platform index pulls by its tag', async (client) => {
      await mustPull(client, 'signed/multi:signed', 'dev');
    });

    eachClient('4b. an unsigned index of unsigned children is refused', async (client, t) => {
      await mustRefuse(client, t, 'signed/multi:unsigned', 'dev');
    });

    it('signs signed/app:referrer with an OCI 1.1 referrer', async () => {
      const image = imageOf('referrer');
      assert.equal((await getManifest('signed/app', 'referrer', 'dev')).status, 412);
      const signature = await signAsReferrer(asCi(), {
        repository: 'signed/app',
        subject: descriptorOf(image),
        dockerReference: `${host}/signed/app`,
        key: trusted,
      });
      const referrers = await fetch(`${url}/v2/signed/app/referrers/${image.manifestDigest}`, {
        headers: { authorization: basic('dev') },
      });
      assert.equal(referrers.status, 200);
      const list = (await referrers.json()) as { manifests: { digest: string; artifactType?: string }[] };
      assert.deepEqual(
        list.manifests.map((m) => [m.digest, m.artifactType]),
        [[signature.manifest.digest, COSIGN_ARTIFACT_TYPE]],
      );
      // No tag-scheme signature exists: the referrer is what unlocks the pull.
      const sigTag = `sha256-${image.manifestDigest.slice('sha256:'.length)}.sig`;
      assert.equal((await getManifest('signed/app', sigTag, 'ci')).status, 404);
      assert.equal((await getManifest('signed/app', 'referrer', 'dev')).status, 200);
    });

    eachClient('5. an image signed by an OCI 1.1 referrer pulls', async (client) => {
      await mustPull(client, 'signed/app:referrer', 'dev');
    });

    it('signs signed/app:untrusted with an untrusted key, and replays a trusted signature of another image', async () => {
      const image = imageOf('untrusted');
      const dockerReference = `${host}/signed/app`;
      // The .sig manifest holds two signatures, as cosign appends them: one by a key the namespace does not
      // trust, and a valid signature by the trusted key of another image (v1), copied here.
      const layers = [
        signatureLayer(untrusted, simpleSigningPayload(dockerReference, image.manifestDigest)),
        signatureLayer(trusted, simpleSigningPayload(dockerReference, imageOf('v1').manifestDigest)),
      ];
      const { config, manifest } = sigManifest(layers);
      for (const blob of [...layers.map((l) => l.blob), config]) await pushBlob(asCi(), 'signed/app', blob);
      await pushManifest(asCi(), 'signed/app', sigTag(image.manifestDigest), manifest.bytes);
      await signAsReferrer(asCi(), {
        repository: 'signed/app',
        subject: descriptorOf(image),
        dockerReference,
        key: untrusted,
      });
      assert.equal((await getManifest('signed/app', 'untrusted', 'dev')).status, 412);
    });

    eachClient(
      '6. an untrusted key, or a trusted signature of another image, does not unlock the pull',
      async (client, t) => {
        await mustRefuse(client, t, 'signed/app:untrusted', 'dev');
      },
    );

    it('an unsigned image that names a subject or calls itself a signature is still an image', async () => {
      // Clients run these: they ignore `subject` and `artifactType`.
      const body = JSON.parse(imageOf('unsigned').manifestBytes.toString()) as Record<string, unknown>;
      await pushManifest(asCi(), 'signed/app', 'with-subject', {
        ...body,
        subject: descriptorOf(imageOf('v1')),
      });
      await pushManifest(asCi(), 'signed/app', 'as-signature', {
        ...body,
        artifactType: COSIGN_ARTIFACT_TYPE,
      });
      for (const tag of ['with-subject', 'as-signature']) {
        assert.equal((await getManifest('signed/app', tag, 'dev')).status, 412, tag);
      }
    });

    eachClient('an unsigned image disguised as a referrer or a signature is refused', async (client, t) => {
      await mustRefuse(client, t, 'signed/app:with-subject', 'dev');
      await mustRefuse(client, t, 'signed/app:as-signature', 'dev');
    });

    it('7. warn mode: an unsigned image is served with a Warning header (HTTP)', async () => {
      const image = imageOf('warned');
      for (const method of ['GET', 'HEAD']) {
        const res = await getManifest('warned/app', 'v1', 'dev', method);
        assert.equal(res.status, 200, method);
        assert.equal(res.headers.get('docker-content-digest'), image.manifestDigest);
        assert.equal(
          res.headers.get('warning'),
          `199 berth "image warned/app@${image.manifestDigest} is not signed by a trusted signer"`,
          method,
        );
      }
    });

    eachClient('7. warn mode: an unsigned image pulls', async (client, t) => {
      const r = await client.pull('warned/app:v1', 'dev');
      assert.equal(r.code, 0, `${client.name} pull under warn must succeed:\n${out(r)}`);
      const warned = out(r)
        .split('\n')
        .filter((l) => NOT_SIGNED.test(l));
      t.diagnostic(`${client.name} shows the warning: ${warned.join(' | ').slice(0, 400) || '(no)'}`);
    });

    it('a trust change re-decides: after rotating to the other key, only its signatures count', async () => {
      await server.services.signatures.setTrust(
        'signed',
        { mode: 'enforce', cosign: { keys: [{ name: 'rotated', publicKey: untrusted.publicKeyPem }] } },
        null,
      );
      assert.equal((await getManifest('signed/app', 'v1', 'dev')).status, 412);
      assert.equal((await getManifest('signed/app', 'referrer', 'dev')).status, 412);
      assert.equal((await getManifest('signed/multi', 'signed', 'dev')).status, 412);
      assert.equal((await getManifest('signed/app', 'untrusted', 'dev')).status, 200);
    });
  },
);
