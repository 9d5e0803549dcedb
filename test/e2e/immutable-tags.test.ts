/**
 * Immutable tags with the Docker engine (a private dockerd): `docker push team/app:v1`, make v1 immutable through
 * the admin API, push a changed image to v1 again: the push fails (non-zero exit) and docker prints the registry's
 * message `tag v1 of team/app is immutable`; v1 still points at the first image, and pushing that image again
 * succeeds. Berth only (Distribution has no immutable tags).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  missing,
  missingRoot,
  removeTree,
  run,
  skipIf,
  startDockerd,
  tempDir,
  type RunResult,
  type RunningDockerd,
} from '../helpers/clients.ts';
import { E2E_TARGET } from '../helpers/distribution.ts';
import { startBerth, type RunningBerth } from '../helpers/server.ts';

const PASSWORD = 'immutable-admin-password-1';
const AUTH = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;

describe(
  'immutable tags with docker push',
  {
    skip: skipIf(
      E2E_TARGET === 'distribution' && 'Distribution has no immutable tags',
      missing('dockerd', 'docker', 'tar'),
      missingRoot('dockerd'),
    ),
  },
  () => {
    let registry: RunningBerth;
    let dockerd: RunningDockerd;
    let work: string;

    const ref = (name: string): string => `${registry.host}/${name}`;
    const docker = (args: string[], allowFailure = false): Promise<RunResult> =>
      dockerd.docker(args, { allowFailure });
    /** `docker import`s a one-file image of random content as `name`. */
    const importImage = async (name: string): Promise<void> => {
      const dir = path.join(work, `rootfs-${randomBytes(4).toString('hex')}`);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'random.bin'), randomBytes(64 * 1024));
      const tarball = `${dir}.tar.gz`;
      await run('tar', ['-C', dir, '-czf', tarball, 'random.bin']);
      await docker(['import', tarball, name]);
    };
    const tagDigest = async (repo: string, tag: string): Promise<string | null> => {
      const res = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, {
        method: 'HEAD',
        headers: {
          authorization: AUTH,
          accept:
            'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
        },
      });
      return res.status === 200 ? res.headers.get('docker-content-digest') : null;
    };
    const pushedDigest = (out: RunResult): string => {
      const m = /digest: (sha256:[0-9a-f]{64})/.exec(out.stdout);
      assert.ok(m, `digest in docker push output:\n${out.stdout}`);
      return m[1] as string;
    };

    before(async () => {
      registry = await startBerth({ env: { BERTH_AUTH_MODE: 'basic', BERTH_ADMIN_PASSWORD: PASSWORD } });
      work = await tempDir('immutable-tags');
      dockerd = await startDockerd();
      const login = await dockerd.docker(['login', registry.host, '-u', 'admin', '--password-stdin'], {
        input: PASSWORD,
      });
      assert.match(login.stdout, /Login Succeeded/);
    });

    after(async () => {
      await dockerd?.stop();
      await registry?.dispose();
      if (work) await removeTree(work);
    });

    it('refuses a docker push that would move an immutable tag, and docker prints why', async () => {
      await importImage(ref('team/app:v1'));
      const first = pushedDigest(await docker(['push', ref('team/app:v1')]));
      assert.equal(await tagDigest('team/app', 'v1'), first);

      const rule = await fetch(`${registry.url}/api/v1/namespaces/team/immutable-tags`, {
        method: 'POST',
        headers: { authorization: AUTH, 'content-type': 'application/json' },
        body: JSON.stringify({ repositoryGlob: 'app', tagGlob: 'v1' }),
      });
      assert.equal(rule.status, 201, await rule.text());

      // The same image again: the same digest, allowed.
      assert.equal(pushedDigest(await docker(['push', ref('team/app:v1')])), first);

      await docker(['tag', ref('team/app:v1'), ref('team/app:first')]);
      await importImage(ref('team/app:v1'));
      const refused = await docker(['push', ref('team/app:v1')], true);
      assert.notEqual(refused.code, 0, `docker push should fail:\n${refused.stdout}\n${refused.stderr}`);
      assert.match(`${refused.stdout}\n${refused.stderr}`, /tag v1 of team\/app is immutable/);
      assert.equal(await tagDigest('team/app', 'v1'), first, 'v1 still points at the first image');

      // A tag no rule covers takes the changed image.
      await docker(['tag', ref('team/app:v1'), ref('team/app:v2')]);
      const second = pushedDigest(await docker(['push', ref('team/app:v2')]));
      assert.notEqual(second, first);
      assert.equal(await tagDigest('team/app', 'v2'), second);
    });
  },
);
