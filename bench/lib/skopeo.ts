/**
 * skopeo with all of its state in a temp dir (HOME, XDG dirs, registries.conf, policy, auth file, TMPDIR).
 *
 * containers/image keeps a blob-info cache that remembers where it has seen each blob and then skips an upload
 * by a cross-repository mount; as root that cache is /var/lib/containers/cache/blob-info-cache-v1.boltdb (no
 * flag or environment variable moves it), otherwise $XDG_DATA_HOME/containers/cache. Both are deleted before
 * every skopeo run so every run really transfers the layer.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type RunResult } from './proc.ts';

export const ROOT_BLOB_INFO_CACHE = '/var/lib/containers/cache/blob-info-cache-v1.boltdb';

export interface Skopeo {
  dir: string;
  /** Runs `skopeo copy SRC DEST` over plain HTTP; resolves with the wall time. */
  copy(src: string, dest: string): Promise<RunResult>;
  cleanup(): Promise<void>;
}

export async function createSkopeo(dir: string): Promise<Skopeo> {
  const home = path.join(dir, 'home');
  const xdgData = path.join(home, '.local', 'share');
  const tmp = path.join(dir, 'tmp');
  for (const d of [home, xdgData, tmp, path.join(home, '.config', 'containers')]) {
    await mkdir(d, { recursive: true });
  }
  const registriesConf = path.join(dir, 'registries.conf');
  await writeFile(registriesConf, 'unqualified-search-registries = []\n');
  const policy = path.join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const authFile = path.join(dir, 'auth.json');
  await writeFile(authFile, JSON.stringify({ auths: {} }));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: xdgData,
    XDG_RUNTIME_DIR: path.join(dir, 'run'),
    TMPDIR: tmp,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    REGISTRY_AUTH_FILE: authFile,
    DOCKER_CONFIG: path.join(home, '.docker'),
  };
  await mkdir(env.XDG_RUNTIME_DIR as string, { recursive: true, mode: 0o700 });
  const clearCaches = async (): Promise<void> => {
    await rm(ROOT_BLOB_INFO_CACHE, { force: true }).catch(() => undefined);
    await rm(path.join(xdgData, 'containers', 'cache'), { recursive: true, force: true });
  };
  return {
    dir,
    copy: async (src, dest) => {
      await clearCaches();
      return run(
        'skopeo',
        [
          '--policy',
          policy,
          'copy',
          '--quiet',
          '--src-tls-verify=false',
          '--dest-tls-verify=false',
          '--retry-times',
          '0',
          src,
          dest,
        ],
        { env, timeoutMs: 30 * 60_000 },
      );
    },
    cleanup: async () => {
      await clearCaches();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
