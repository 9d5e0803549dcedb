/**
 * Image signatures through the admin API (`/api/v1/namespaces/{ns}/signatures/trust`, `.../signatures/recompute`,
 * `/api/v1/repositories/{name}/signatures`) and their enforcement on the manifest routes, on SQLite and
 * PostgreSQL: who may (namespace admins and system admins for the trust; pull permission for the verdicts), the
 * trust document with its defaults filled in, validation naming the field, audit records without key texts, the
 * verdicts of a cosign tag-scheme signature, and what a pull gets under `off`, `warn` and `enforce`. Every admin
 * response is checked against the OpenAPI document.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  assertError,
  createTestRegistry,
  descriptorOf,
  imageManifest,
  json,
  manifestBytes,
  OCI_CONFIG,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';
import {
  addNamespace,
  addUser,
  basic,
  pushBlobAs,
  pushImageAs,
  putManifestAs,
  type Headers,
  type SeededImage,
} from '../helpers/auth.ts';
import { conforms } from '../helpers/openapi.ts';
import { POSTGRES_URL, postgresSkipReason } from '../helpers/postgres.ts';

const PREFIX = '/api/v1';
const ADMIN = basic('root', 'root-password-1');
const OWNER = basic('owner', 'owner-password-1');
const DEV = basic('dev', 'dev-password-1');
const READER = basic('reader', 'reader-password-1');
const OUTSIDER = basic('outsider', 'outsider-password-1');

/** A fresh ECDSA P-256 public key as cosign writes it (`cosign.pub`: PEM SPKI). */
function publicKeyPem(): string {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/** A self-signed-looking certificate PEM; the trust configuration only checks the PEM framing when stored. */
function certificatePem(): string {
  const body = randomBytes(300).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${body.match(/.{1,64}/g)?.join('\n') ?? body}\n-----END CERTIFICATE-----\n`;
}

interface TrustView {
  namespace: string;
  trust: Record<string, unknown> & { mode: string; admission: boolean };
  revision: number;
  updatedBy: string | null;
  updatedAt: string | null;
}

interface VerdictsView {
  repository: string;
  digest: string;
  mode: string;
  signed: boolean;
  verdicts: {
    signatureDigest: string;
    layer: number;
    tool: string;
    format: string;
    verified: boolean;
    trustRevision: number;
  }[];
}

const pgSkip = await postgresSkipReason();
const dialects = [
  { name: 'sqlite', skip: false as const, schema: null },
  { name: 'postgres', skip: pgSkip, schema: `berth_test_${randomBytes(6).toString('hex')}` },
];

for (const dialect of dialects) {
  describe(`signatures admin API and enforcement on ${dialect.name}`, { skip: dialect.skip }, () => {
    let reg: TestRegistry;

    async function api(
      method: 'GET' | 'PUT' | 'DELETE' | 'POST',
      path: string,
      headers: Headers,
      body?: unknown,
    ): Promise<Response> {
      const url = `${PREFIX}${path}`;
      const res = await reg.inject({
        method,
        url,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
      });
      conforms(method, url, res);
      return res;
    }

    function setMode(ns: string, mode: 'off' | 'warn' | 'enforce'): Promise<Response> {
      return api('PUT', `/namespaces/${ns}/signatures/trust`, ADMIN, { mode });
    }

    /**
     * Pushes a cosign tag-scheme signature of `image` into `repo`: an image manifest at `sha256-<hex>.sig` whose
     * one layer is a simple-signing payload naming the image, its signature in the layer's annotation (as
     * `cosign sign` writes it; the signature bytes are random, no key made them).
     */
    async function pushCosignSignature(repo: string, image: SeededImage): Promise<string> {
      const payload = Buffer.from(
        JSON.stringify({
          critical: {
            identity: { 'docker-reference': `registry.example.com/${repo}` },
            image: { 'docker-manifest-digest': image.digest },
            type: 'cosign container image signature',
          },
          optional: null,
        }),
      );
      const config = Buffer.from(
        JSON.stringify({
          architecture: '',
          config: {},
          created: '0001-01-01T00:00:00Z',
          history: [{ created: '0001-01-01T00:00:00Z' }],
          os: '',
          rootfs: { type: 'layers', diff_ids: [] },
        }),
      );
      await pushBlobAs(reg, DEV, repo, payload);
      await pushBlobAs(reg, DEV, repo, config);
      const layer = {
        ...descriptorOf(payload, 'application/vnd.dev.cosign.simplesigning.v1+json'),
        annotations: { 'dev.cosignproject.cosign/signature': randomBytes(70).toString('base64') },
      };
      const bytes = manifestBytes(
        imageManifest({ config: descriptorOf(config, OCI_CONFIG), layers: [layer] }),
      );
      const tag = `${image.digest.replace(':', '-')}.sig`;
      const res = await putManifestAs(reg, DEV, repo, tag, bytes);
      assert.equal(res.statusCode, 201, res.body);
      return res.headers['docker-content-digest'] as string;
    }

    before(async () => {
      reg = await createTestRegistry({
        'auth.mode': 'basic',
        ...(dialect.schema === null
          ? {}
          : {
              'metadata.driver': 'postgres',
              'metadata.postgres.url': POSTGRES_URL,
              'metadata.postgres.schema': dialect.schema,
            }),
      });
      await addUser(reg, 'root', 'root-password-1', { admin: true });
      for (const name of ['owner', 'dev', 'reader', 'outsider']) {
        await addUser(reg, name, `${name}-password-1`);
      }
      for (const ns of ['team', 'enf']) {
        await addNamespace(reg, ns, 'private', [
          ['user', 'owner', 'admin'],
          ['user', 'dev', 'developer'],
          ['user', 'reader', 'reader'],
        ]);
      }
    });
    after(async () => {
      await reg?.dispose();
      if (dialect.schema !== null && !dialect.skip) {
        const admin = new pg.Client({ connectionString: POSTGRES_URL });
        await admin.connect();
        await admin.query(`drop schema if exists "${dialect.schema}" cascade`).finally(() => admin.end());
      }
    });

    it('shows the default of a namespace never configured', async () => {
      const res = await api('GET', '/namespaces/team/signatures/trust', OWNER);
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(json(res), {
        namespace: 'team',
        trust: {
          mode: 'off',
          admission: false,
          cosign: { keys: [], keyless: [] },
          notation: { trustStores: [], trustPolicies: [] },
        },
        revision: 0,
        updatedBy: null,
        updatedAt: null,
      });
    });

    it('a namespace admin sets, reads and removes the trust, with defaults filled in; audited without PEMs', async () => {
      const key = publicKeyPem();
      const cert = certificatePem();
      const document = {
        mode: 'warn',
        cosign: {
          keys: [{ name: 'release', publicKey: key }],
          keyless: [
            {
              name: 'github',
              fulcioRoots: [cert],
              identities: [
                {
                  subjectRegExp: '^https://github\\.com/acme/',
                  issuer: 'https://token.actions.githubusercontent.com',
                },
              ],
            },
          ],
        },
        notation: {
          trustStores: [{ type: 'ca', name: 'acme', certificates: [cert] }],
          trustPolicies: [
            {
              name: 'all',
              registryScopes: ['*'],
              signatureVerification: { level: 'strict' },
              trustStores: ['ca:acme'],
              trustedIdentities: ['*'],
            },
          ],
        },
      };
      const set = await api('PUT', '/namespaces/team/signatures/trust', OWNER, document);
      assert.equal(set.statusCode, 200, set.body);
      const view = json<TrustView>(set);
      assert.equal(view.revision, 1);
      assert.equal(view.updatedBy, 'owner');
      assert.ok(view.updatedAt !== null);
      assert.deepEqual(view.trust, {
        mode: 'warn',
        admission: false,
        cosign: {
          keys: [{ name: 'release', publicKey: key }],
          keyless: [{ ...document.cosign.keyless[0], requireSignedTime: true }],
        },
        notation: document.notation,
      });
      const read = await api('GET', '/namespaces/team/signatures/trust', OWNER);
      assert.deepEqual(json(read), json(set));

      const removed = await api('DELETE', '/namespaces/team/signatures/trust', OWNER);
      assert.equal(removed.statusCode, 200, removed.body);
      const after = json<TrustView>(removed);
      assert.equal(after.revision, 2);
      assert.equal(after.trust.mode, 'off');
      assert.deepEqual(after.trust.cosign, { keys: [], keyless: [] });

      const audit = await reg.services.auth.store.queryAudit({ action: 'signatures.', limit: 10 });
      const rows = audit.items.filter((a) => a.target === 'team').reverse();
      assert.deepEqual(
        rows.map((a) => `${a.action} ${a.actor} ${a.success}`),
        ['signatures.trust.set owner true', 'signatures.trust.remove owner true'],
      );
      assert.deepEqual(rows[0]?.detail, {
        via: 'api',
        mode: 'warn',
        admission: false,
        cosignKeys: 1,
        cosignKeyless: 1,
        notationTrustStores: 1,
        notationTrustPolicies: 1,
        revision: 1,
      });
      const text = JSON.stringify(audit.items);
      assert.ok(!text.includes('BEGIN'), 'no PEM text in the audit log');
    });

    it('refuses invalid documents naming the field', async () => {
      const key = publicKeyPem();
      const cases: [unknown, string][] = [
        [{ cosign: { keys: [{ name: 'k', publicKey: 'not a key' }] } }, 'cosign.keys.0.publicKey'],
        [{ mode: 'warn', colour: 'blue' }, 'colour'],
        [{ mode: 'sometimes' }, 'mode'],
        [
          {
            notation: {
              trustPolicies: [
                {
                  name: 'p',
                  registryScopes: ['*'],
                  signatureVerification: { level: 'strict' },
                  trustStores: ['ca:missing'],
                  trustedIdentities: ['*'],
                },
              ],
            },
          },
          'notation.trustPolicies.0.trustStores',
        ],
        [
          {
            cosign: {
              keys: [
                { name: 'same', publicKey: key },
                { name: 'same', publicKey: key },
              ],
            },
          },
          'cosign.keys.1.name',
        ],
      ];
      for (const [document, field] of cases) {
        const res = await api('PUT', '/namespaces/team/signatures/trust', OWNER, document);
        assertError(res, 400, 'UNSUPPORTED');
        const [error] = json<{ errors: { message: string; detail?: { field?: string } }[] }>(res).errors;
        assert.equal(error?.detail?.field, field, res.body);
        assert.ok(error?.message.includes(field), res.body);
      }
      assertError(await api('PUT', '/namespaces/Bad_NS/signatures/trust', ADMIN, {}), 400, 'UNSUPPORTED');
    });

    it('refuses the trust to developers and outsiders (changes audited), allows system administrators', async () => {
      assertError(await api('GET', '/namespaces/team/signatures/trust', DEV), 403, 'DENIED');
      assertError(
        await api('PUT', '/namespaces/team/signatures/trust', DEV, { mode: 'enforce' }),
        403,
        'DENIED',
      );
      assertError(await api('DELETE', '/namespaces/team/signatures/trust', OUTSIDER), 403, 'DENIED');
      assertError(await api('POST', '/namespaces/team/signatures/recompute', READER), 403, 'DENIED');
      const denied = await reg.services.auth.store.queryAudit({
        action: 'signatures.',
        success: false,
        limit: 10,
      });
      assert.deepEqual(denied.items.map((a) => `${a.action} ${a.actor}`).reverse(), [
        'signatures.trust.set dev',
        'signatures.trust.remove outsider',
        'signatures.recompute reader',
      ]);
      const ok = await api('GET', '/namespaces/team/signatures/trust', ADMIN);
      assert.equal(ok.statusCode, 200);
    });

    it('lists the verdict of a cosign tag-scheme signature to a reader; recomputes; 404 for unknown references', async () => {
      const image = await pushImageAs(reg, DEV, 'team/app', 'v1');
      const sig = await pushCosignSignature('team/app', image);
      const name = encodeURIComponent('team/app');

      for (const reference of ['v1', image.digest]) {
        const res = await api('GET', `/repositories/${name}/signatures?reference=${reference}`, READER);
        assert.equal(res.statusCode, 200, res.body);
        const view = json<VerdictsView>(res);
        assert.equal(view.repository, 'team/app');
        assert.equal(view.digest, image.digest);
        assert.equal(view.mode, 'off');
        assert.equal(view.signed, false);
        assert.equal(view.verdicts.length, 1);
        const [verdict] = view.verdicts;
        assert.equal(verdict?.signatureDigest, sig);
        assert.equal(verdict?.layer, 0);
        assert.equal(verdict?.tool, 'cosign');
        assert.equal(verdict?.format, 'cosign-simple-signing');
        assert.equal(verdict?.verified, false);
      }
      const unsigned = await pushImageAs(reg, DEV, 'team/app', 'v2');
      const none = await api('GET', `/repositories/${name}/signatures?reference=${unsigned.digest}`, READER);
      assert.equal(none.statusCode, 200);
      assert.deepEqual(json<VerdictsView>(none).verdicts, []);

      // A new trust revision: the verdicts are computed again before they are listed.
      const set = await setMode('team', 'warn');
      const revision = json<TrustView>(set).revision;
      const again = await api('GET', `/repositories/${name}/signatures?reference=v1`, READER);
      const view = json<VerdictsView>(again);
      assert.equal(view.mode, 'warn');
      assert.deepEqual(
        view.verdicts.map((v) => v.trustRevision),
        [revision],
      );

      const recompute = await api('POST', '/namespaces/team/signatures/recompute', OWNER);
      assert.equal(recompute.statusCode, 200, recompute.body);
      assert.deepEqual(json(recompute), { namespace: 'team', signatures: 1 });
      const audit = await reg.services.auth.store.queryAudit({ action: 'signatures.recompute', limit: 1 });
      assert.deepEqual(
        audit.items.map((a) => [a.actor, a.target, a.success, a.detail?.signatures]),
        [['owner', 'team', true, 1]],
      );

      assertError(
        await api('GET', `/repositories/${name}/signatures?reference=nope`, READER),
        404,
        'NAME_UNKNOWN',
      );
      assertError(
        await api('GET', `/repositories/${name}/signatures?reference=sha256:${'0'.repeat(64)}`, ADMIN),
        404,
        'NAME_UNKNOWN',
      );
      assertError(await api('GET', `/repositories/${name}/signatures`, READER), 400, 'UNSUPPORTED');
      assertError(
        await api('GET', `/repositories/${name}/signatures?reference=sha256:zz`, READER),
        400,
        'UNSUPPORTED',
      );
      assertError(await api('GET', `/repositories/${name}/signatures?reference=v1`, OUTSIDER), 403, 'DENIED');
      await setMode('team', 'off');
    });

    describe('enforcement on pulls', () => {
      let image: SeededImage;
      let sig: string;
      const message = (): string => `image enf/app@${image.digest} is not signed by a trusted signer`;

      before(async () => {
        image = await pushImageAs(reg, DEV, 'enf/app', 'v1');
        sig = await pushCosignSignature('enf/app', image);
      });

      it('under enforce, refuses GET and HEAD of an unsigned image by tag and by digest with 412, audited', async () => {
        assert.equal((await setMode('enf', 'enforce')).statusCode, 200);
        for (const reference of ['v1', image.digest]) {
          const get = await reg.inject({
            method: 'GET',
            url: `/v2/enf/app/manifests/${reference}`,
            headers: READER,
          });
          assertError(get, 412, 'DENIED');
          const [error] = json<{ errors: { message: string }[] }>(get).errors;
          assert.equal(error?.message, message());
          const head = await reg.inject({
            method: 'HEAD',
            url: `/v2/enf/app/manifests/${reference}`,
            headers: READER,
          });
          assert.equal(head.statusCode, 412);
        }
        const audit = await reg.services.auth.store.queryAudit({
          action: 'pull',
          success: false,
          target: `enf/app@${image.digest}`,
          limit: 10,
        });
        assert.equal(audit.items.length, 4);
        assert.equal(audit.items[0]?.actor, 'reader');
        assert.equal(audit.items[0]?.detail?.reason, 'unsigned image');
      });

      it('under enforce, a principal that may push, the signature manifest and the referrers listing pass', async () => {
        for (const method of ['GET', 'HEAD'] as const) {
          const res = await reg.inject({ method, url: '/v2/enf/app/manifests/v1', headers: DEV });
          assert.equal(res.statusCode, 200, `${method} as a developer`);
        }
        const tag = `${image.digest.replace(':', '-')}.sig`;
        for (const reference of [tag, sig]) {
          const res = await reg.inject({
            method: 'GET',
            url: `/v2/enf/app/manifests/${reference}`,
            headers: READER,
          });
          assert.equal(res.statusCode, 200, `the signature manifest by ${reference}`);
          assert.equal(res.headers['docker-content-digest'], sig);
        }
        const referrers = await reg.inject({
          method: 'GET',
          url: `/v2/enf/app/referrers/${image.digest}`,
          headers: READER,
        });
        assert.equal(referrers.statusCode, 200, referrers.body);
      });

      it('under warn, serves the image with a Warning header; under off, without', async () => {
        assert.equal((await setMode('enf', 'warn')).statusCode, 200);
        for (const method of ['GET', 'HEAD'] as const) {
          const res = await reg.inject({ method, url: '/v2/enf/app/manifests/v1', headers: READER });
          assert.equal(res.statusCode, 200);
          assert.deepEqual([res.headers.warning].flat(), [`199 berth "${message()}"`]);
        }
        assert.equal((await setMode('enf', 'off')).statusCode, 200);
        const res = await reg.inject({ method: 'GET', url: '/v2/enf/app/manifests/v1', headers: READER });
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers.warning, undefined);
      });
    });
  });
}
