/**
 * `berth signatures trust show|set|remove`, `verify` and `recompute`, run as the real CLI on the data directory of
 * a registry that received an image and its cosign tag-scheme signature.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createTestRegistry,
  descriptorOf,
  imageManifest,
  manifestBytes,
  OCI_CONFIG,
  type PushedImage,
  type TestRegistry,
} from '../helpers/app.ts';
import { runBerth, succeeded } from '../helpers/cli.ts';

/** A fresh ECDSA P-256 public key as `cosign generate-key-pair` writes `cosign.pub`. */
function publicKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();
}

describe('berth signatures', () => {
  let reg: TestRegistry;
  let image: PushedImage;
  let signature: string;

  before(async () => {
    reg = await createTestRegistry();
    image = await reg.pushImage('team/app', 'v1');
    // The signature `cosign sign` pushes under the tag scheme (its signature bytes random: no key made them).
    const payload = Buffer.from(
      JSON.stringify({
        critical: {
          identity: { 'docker-reference': 'registry.example.com/team/app' },
          image: { 'docker-manifest-digest': image.digest },
          type: 'cosign container image signature',
        },
        optional: null,
      }),
    );
    const config = Buffer.from(JSON.stringify({ architecture: '', os: '', rootfs: { type: 'layers' } }));
    await reg.pushBlob('team/app', payload);
    await reg.pushBlob('team/app', config);
    const bytes = manifestBytes(
      imageManifest({
        config: descriptorOf(config, OCI_CONFIG),
        layers: [
          {
            ...descriptorOf(payload, 'application/vnd.dev.cosign.simplesigning.v1+json'),
            annotations: { 'dev.cosignproject.cosign/signature': randomBytes(70).toString('base64') },
          },
        ],
      }),
    );
    const res = await reg.putManifest('team/app', `${image.digest.replace(':', '-')}.sig`, bytes);
    assert.equal(res.statusCode, 201, res.body);
    signature = res.headers['docker-content-digest'] as string;
  });
  after(() => reg.dispose());

  it('sets the trust from YAML, shows it, replaces it from stdin and removes it, audited as the system', async () => {
    const key = publicKeyPem();
    const file = path.join(reg.dataDir, 'trust.yaml');
    const indented = key.trimEnd().replace(/\n/g, '\n          ');
    await writeFile(
      file,
      `mode: warn\ncosign:\n  keys:\n    - name: release\n      publicKey: |\n          ${indented}\n`,
    );
    const set = succeeded(
      await runBerth(reg.dataDir, ['signatures', 'trust', 'set', 'team', '-f', file]),
      'trust set',
    );
    assert.match(set, /Set the signature trust of team \(revision 1, mode warn\)/);

    const shown = JSON.parse(
      succeeded(await runBerth(reg.dataDir, ['signatures', 'trust', 'show', 'team', '--json']), 'show'),
    );
    assert.equal(shown.revision, 1);
    assert.equal(shown.updatedBy, null);
    assert.deepEqual(shown.trust.cosign.keys, [{ name: 'release', publicKey: key }]);
    assert.deepEqual(shown.trust.notation, { trustStores: [], trustPolicies: [] });
    const text = succeeded(await runBerth(reg.dataDir, ['signatures', 'trust', 'show', 'team']), 'show');
    assert.match(text, /^revision:\s+1$/m);
    assert.match(text, /^mode: warn$/m);
    assert.match(text, /-----BEGIN PUBLIC KEY-----/);

    const piped = await runBerth(reg.dataDir, ['signatures', 'trust', 'set', 'team', '-f', '-', '--json'], {
      input: JSON.stringify({ mode: 'enforce', admission: false }),
    });
    const replaced = JSON.parse(succeeded(piped, 'trust set -f -'));
    assert.equal(replaced.revision, 2);
    assert.equal(replaced.trust.mode, 'enforce');
    assert.deepEqual(replaced.trust.cosign.keys, []);

    const removed = succeeded(
      await runBerth(reg.dataDir, ['signatures', 'trust', 'remove', 'team']),
      'trust remove',
    );
    assert.match(removed, /Removed the signature trust of team \(revision 3, mode off\)/);
    const audit = await reg.services.auth.store.queryAudit({ action: 'signatures.trust.', limit: 10 });
    assert.deepEqual(audit.items.map((a) => `${a.action} ${a.actorKind} ${a.target}`).reverse(), [
      'signatures.trust.set system team',
      'signatures.trust.set system team',
      'signatures.trust.remove system team',
    ]);
    assert.ok(!JSON.stringify(audit.items).includes('BEGIN PUBLIC KEY'));
  });

  it('verifies an image by tag and by digest: the table, signed: no, and --json', async () => {
    const out = succeeded(await runBerth(reg.dataDir, ['signatures', 'verify', 'team/app:v1']), 'verify');
    assert.match(out, /^SIGNATURE DIGEST\s+TOOL\s+FORMAT\s+VERIFIED\s+SIGNER\s+FINGERPRINT\s+REASON$/m);
    const row = out.split('\n').find((l) => l.startsWith(signature));
    assert.ok(row, out);
    assert.match(row, /^sha256:[0-9a-f]{64}\s+cosign\s+cosign-simple-signing\s+no\s+\S/);
    assert.match(out, /^digest:\s+sha256:/m);
    assert.match(out, /^signed: no$/m);

    const json = JSON.parse(
      succeeded(
        await runBerth(reg.dataDir, ['signatures', 'verify', `team/app@${image.digest}`, '--json']),
        'verify --json',
      ),
    );
    assert.equal(json.digest, image.digest);
    assert.equal(json.signed, false);
    assert.deepEqual(
      json.verdicts.map((v: { signatureDigest: string; tool: string; verified: boolean }) => [
        v.signatureDigest,
        v.tool,
        v.verified,
      ]),
      [[signature, 'cosign', false]],
    );
  });

  it('recomputes a namespace, audited', async () => {
    const out = succeeded(await runBerth(reg.dataDir, ['signatures', 'recompute', 'team']), 'recompute');
    assert.match(out, /Verified 1 signature manifest\(s\) of team again\./);
    const audit = await reg.services.auth.store.queryAudit({ action: 'signatures.recompute', limit: 1 });
    assert.deepEqual(
      audit.items.map((a) => [a.actorKind, a.target, a.detail?.signatures]),
      [['system', 'team', 1]],
    );
  });

  it('refuses invalid input with exit 1 and a message', async () => {
    const bad = path.join(reg.dataDir, 'bad.json');
    await writeFile(bad, JSON.stringify({ cosign: { keys: [{ name: 'k', publicKey: 'not a key' }] } }));
    const cases: [string[], RegExp][] = [
      [['signatures', 'trust', 'set', 'team', '-f', bad], /cosign\.keys\.0\.publicKey/],
      [['signatures', 'trust', 'set', 'team', '-f', path.join(reg.dataDir, 'missing.yaml')], /cannot read/],
      [['signatures', 'trust', 'show', 'Bad_NS'], /invalid namespace name/],
      [['signatures', 'verify', 'team/app'], /expected REPOSITORY:TAG or REPOSITORY@DIGEST/],
      [['signatures', 'verify', 'team/app:nope'], /manifest nope is not known in team\/app/],
    ];
    for (const [args, message] of cases) {
      const r = await runBerth(reg.dataDir, args);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
