/**
 * Real registry clients for the end-to-end suite, each with all of its state in a temp dir so tests never touch
 * (or depend on) the machine's own images, credentials or configuration:
 *
 * - `containersEnv()`: skopeo, podman and buildah (containers/image + containers/storage) driven by environment
 *   variables: CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF, CONTAINERS_CONF, REGISTRY_AUTH_FILE,
 *   XDG_RUNTIME_DIR, TMPDIR and HOME (c/image reads `$HOME/.config/containers/policy.json` before
 *   /etc/containers/policy.json, which is how all three tools get an `insecureAcceptAnything` policy).
 * - `startContainerd()`: a private containerd (own root, state, sockets; CRI plugin disabled) driven by `ctr`.
 * - `startDockerd()`: a private dockerd (own data-root, exec-root, socket, daemon.json) driven by `docker`.
 *
 * What still escapes the temp dir (hard-coded in the tools, not configurable here):
 * containers/image as root keeps its blob-info cache in /var/lib/containers/cache; podman 4.3 creates
 * /run/containers/networks; dockerd 20.10 creates /run/docker/plugins.
 *
 * `run()` captures stdout/stderr and throws with both on a non-zero exit. `missing()` gives the skip reason
 * for tests whose tools are not installed: `it(name, { skip: missing('skopeo') }, ...)`; under CI (`CI=true`) a
 * missing tool fails instead (`skipOrFail`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeImageLayout, writeIndexLayout, type ImageLayout, type IndexLayout } from './oci-layout.ts';
import { skipOrFail } from './skip.ts';

// ---------------------------------------------------------------------------------------------------------
// Tools

const toolCache = new Map<string, string | undefined>();

/** Absolute path of an executable on PATH (like `which`), or undefined. */
export function which(name: string): string | undefined {
  if (toolCache.has(name)) return toolCache.get(name);
  let found: string | undefined;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      found = candidate;
      break;
    } catch {
      // not here
    }
  }
  toolCache.set(name, found);
  return found;
}

/**
 * A skip reason naming the tools that are not installed, or `false` when all are there. Under CI a missing tool
 * throws instead (see `skipOrFail`).
 */
export function missing(...names: string[]): string | false {
  const absent = names.filter((n) => !which(n));
  return skipOrFail(absent.length ? `${absent.join(', ')} not installed` : false);
}

/** A skip reason for daemons that need root (dockerd, containerd), or `false`; under CI, throws instead. */
export function missingRoot(what: string): string | false {
  return skipOrFail(process.getuid?.() === 0 ? false : `${what} needs root`);
}

/** Combines skip reasons: the first non-false one wins. */
export function skipIf(...reasons: (string | false)[]): string | false {
  return reasons.find((r) => r !== false) ?? false;
}

// ---------------------------------------------------------------------------------------------------------
// Running commands

export interface RunOptions {
  /** Added to (and overriding) process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is closed afterwards. */
  input?: string | Buffer;
  /** Kill (SIGKILL) after this long; 120 s by default. */
  timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    super(
      `command failed (${result.signal ?? `exit ${result.code}`}): ${command}\n` +
        `--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`,
    );
    this.name = 'CommandError';
  }
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** Runs a command to completion, capturing stdout and stderr; throws `CommandError` on failure. */
export async function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const command = [cmd, ...args].map(quote).join(' ');
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => stdout.push(d));
  child.stderr.on('data', (d: Buffer) => stderr.push(d));
  child.stdin.on('error', () => {}); // the command may exit without reading its input
  child.stdin.end(options.input);
  const timeoutMs = options.timeoutMs ?? 120_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const result = await new Promise<RunResult>((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        stdout: Buffer.concat(stdout).toString(),
        stderr: Buffer.concat(stderr).toString() + (timedOut ? `\n[killed after ${timeoutMs} ms]` : ''),
        code,
        signal,
      });
    });
  });
  if (result.code !== 0 && !options.allowFailure) throw new CommandError(command, result);
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Temp dirs, mounts and processes

/** A fresh temp dir `berth-e2e-<prefix>-XXXXXX`. */
export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `berth-e2e-${prefix}-`));
}

/** Mount points at or below `dir` (from /proc/self/mountinfo), deepest first. */
export function mountsUnder(dir: string): string[] {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const root = path.resolve(dir);
  const points = info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === root || p.startsWith(`${root}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmounts everything at or below `dir` (lazily, so busy mounts go too), then removes it. */
export async function removeTree(dir: string): Promise<void> {
  for (let pass = 0; pass < 3; pass++) {
    const points = mountsUnder(dir);
    if (points.length === 0) break;
    for (const p of points) await run('umount', ['-l', p], { allowFailure: true });
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Pids of all live descendants of `pid` (read from /proc). */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may contain spaces and parentheses, so parse after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const children = parents.get(queue.shift() as number) ?? [];
    out.push(...children);
    queue.push(...children);
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers signal 0; treat it as gone.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Stops a daemon we spawned: SIGTERM, wait up to `graceMs`, SIGKILL; then SIGKILL whatever descendants it had
 * when we started stopping it (plus `extraPids`, e.g. dockerd's containerd read from its pid file).
 */
async function stopDaemon(child: ChildProcess, graceMs: number, extraPids: number[] = []): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const kids = [...descendants(pid), ...extraPids];
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
  for (let i = 0; i < 20 && kids.some(alive); i++) await sleep(100);
  for (const kid of kids) {
    if (alive(kid)) {
      try {
        process.kill(kid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms:\n${log()}`);
    await sleep(200);
  }
}

function toml(value: string): string {
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------------------
// skopeo, podman, buildah

export interface ContainersEnv {
  dir: string;
  /** Pass as `run(..., { env })`. */
  env: NodeJS.ProcessEnv;
  storageDriver: 'overlay' | 'vfs';
  graphroot: string;
  runroot: string;
  storageConf: string;
  registriesConf: string;
  containersConf: string;
  authFile: string;
  /** An insecureAcceptAnything policy (also found through $HOME; give it to `skopeo --policy`, etc.). */
  policyPath: string;
  /** Unmounts whatever buildah/podman left mounted and removes the temp dir. */
  cleanup(): Promise<void>;
}

export interface ContainersEnvOptions {
  /** Storage driver; `BERTH_E2E_STORAGE_DRIVER` or overlay when root and the kernel has it, else vfs. */
  storageDriver?: 'overlay' | 'vfs';
}

function defaultStorageDriver(): 'overlay' | 'vfs' {
  const fromEnv = process.env.BERTH_E2E_STORAGE_DRIVER;
  if (fromEnv === 'overlay' || fromEnv === 'vfs') return fromEnv;
  try {
    const hasOverlay = /\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'));
    // Native overlay as root works on ext4/xfs here; rootless would need fuse-overlayfs, so use vfs then.
    return hasOverlay && process.getuid?.() === 0 ? 'overlay' : 'vfs';
  } catch {
    return 'vfs';
  }
}

/**
 * Per-test state for skopeo/podman/buildah. `insecureHosts` (e.g. the registry's `127.0.0.1:PORT`) are marked
 * `insecure = true` in registries.conf, which podman and buildah honour for plain HTTP; skopeo 1.9 still needs
 * `--src-tls-verify=false` / `--dest-tls-verify=false` (and podman/buildah accept `--tls-verify=false` too).
 */
export async function containersEnv(
  insecureHosts: string[],
  options: ContainersEnvOptions = {},
): Promise<ContainersEnv> {
  const dir = await tempDir('containers');
  const storageDriver = options.storageDriver ?? defaultStorageDriver();
  const p = (...parts: string[]): string => path.join(dir, ...parts);
  const graphroot = p('storage');
  const runroot = p('run');
  const home = p('home');
  const xdg = p('xdg-runtime');
  for (const d of [graphroot, runroot, p('tmp'), p('libpod-tmp'), p('networks'), xdg]) {
    await mkdir(d, { recursive: true });
  }
  await mkdir(path.join(home, '.config', 'containers'), { recursive: true });
  await chmod(xdg, 0o700);

  const storageConf = p('storage.conf');
  await writeFile(
    storageConf,
    [
      '[storage]',
      `driver = ${toml(storageDriver)}`,
      `graphroot = ${toml(graphroot)}`,
      `runroot = ${toml(runroot)}`,
      '',
    ].join('\n'),
  );
  const registriesConf = p('registries.conf');
  await writeFile(
    registriesConf,
    [
      // No short-name resolution against public registries: every reference in the tests is fully qualified.
      'unqualified-search-registries = []',
      'short-name-mode = "permissive"',
      ...insecureHosts.flatMap((h) => ['', '[[registry]]', `location = ${toml(h)}`, 'insecure = true']),
      '',
    ].join('\n'),
  );
  const containersConf = p('containers.conf');
  await writeFile(
    containersConf,
    [
      '[engine]',
      // podman's default for root is /run/libpod; events would go to journald or a file there.
      `tmp_dir = ${toml(p('libpod-tmp'))}`,
      'events_logger = "none"',
      'cgroup_manager = "cgroupfs"',
      '[network]',
      // Without these podman probes /etc/cni/net.d and creates /etc/containers/networks.
      'network_backend = "netavark"',
      `network_config_dir = ${toml(p('networks'))}`,
      '',
    ].join('\n'),
  );
  // podman refuses to start when REGISTRY_AUTH_FILE names a file that does not exist.
  const authFile = p('auth.json');
  await writeFile(authFile, JSON.stringify({ auths: {} }));
  const policy = JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] });
  const policyPath = p('policy.json');
  await writeFile(policyPath, policy);
  await writeFile(path.join(home, '.config', 'containers', 'policy.json'), policy);

  const env: NodeJS.ProcessEnv = {
    CONTAINERS_STORAGE_CONF: storageConf,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    CONTAINERS_CONF: containersConf,
    REGISTRY_AUTH_FILE: authFile,
    XDG_RUNTIME_DIR: xdg,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    HOME: home,
    TMPDIR: p('tmp'),
    // Keep the caller's docker client settings away from c/image's credential lookup.
    DOCKER_CONFIG: path.join(home, '.docker'),
    BUILDAH_ISOLATION: 'chroot',
  };
  return {
    dir,
    env,
    storageDriver,
    graphroot,
    runroot,
    storageConf,
    registriesConf,
    containersConf,
    authFile,
    policyPath,
    cleanup: async () => {
      if (which('buildah')) await run('buildah', ['rm', '--all'], { env, allowFailure: true });
      if (which('podman')) await run('podman', ['rm', '--all', '--force'], { env, allowFailure: true });
      await removeTree(dir);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// containerd

export interface RunningContainerd {
  dir: string;
  /** The gRPC socket, for `ctr --address`. */
  address: string;
  /** Runs `ctr --address SOCK <args>`. */
  ctr(args: string[], options?: RunOptions): Promise<RunResult>;
  output(): string;
  /** Kills the daemon (and children), unmounts and removes the temp dir. */
  stop(): Promise<void>;
}

/** Starts a private containerd (CRI disabled) with root, state and sockets under a temp dir. */
export async function startContainerd(dir?: string): Promise<RunningContainerd> {
  const base = dir ?? (await tempDir('containerd'));
  const address = path.join(base, 'containerd.sock');
  const configPath = path.join(base, 'config.toml');
  await writeFile(
    configPath,
    [
      'version = 2',
      `root = ${toml(path.join(base, 'root'))}`,
      `state = ${toml(path.join(base, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${toml(address)}`,
      '[ttrpc]',
      `  address = ${toml(`${address}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '  level = "warn"',
      '[metrics]',
      '  address = ""',
      // Defaults to /opt/containerd, which containerd creates at startup.
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${toml(path.join(base, 'opt'))}`,
      '',
    ].join('\n'),
  );
  const child = spawn('containerd', ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.once('error', (err) => (out += `\n${String(err)}`));
  const stop = async (): Promise<void> => {
    await stopDaemon(child, 10_000);
    await removeTree(base);
  };
  const ctr = (args: string[], options: RunOptions = {}): Promise<RunResult> =>
    run('ctr', ['--address', address, ...args], options);
  try {
    await waitFor(
      'containerd',
      async () => {
        if (child.exitCode !== null) throw new Error(`containerd exited with ${child.exitCode}:\n${out}`);
        return (await ctr(['version'], { allowFailure: true, timeoutMs: 5_000 })).code === 0;
      },
      20_000,
      () => out,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir: base, address, ctr, output: () => out, stop };
}

// ---------------------------------------------------------------------------------------------------------
// dockerd

export interface RunningDockerd {
  dir: string;
  /** `unix:///.../docker.sock` */
  host: string;
  /** DOCKER_HOST and DOCKER_CONFIG for the `docker` client. */
  env: NodeJS.ProcessEnv;
  /** Runs `docker <args>` against this daemon. */
  docker(args: string[], options?: RunOptions): Promise<RunResult>;
  output(): string;
  /** Stops the daemon and its containerd, unmounts and removes the temp dir. */
  stop(): Promise<void>;
}

export interface DockerdOptions {
  /** Extra `insecure-registries` (127.0.0.0/8 is insecure already). */
  insecureRegistries?: string[];
  /** `registry-mirrors` (e.g. `http://127.0.0.1:PORT`): where dockerd asks first for Docker Hub images. */
  registryMirrors?: string[];
  /**
   * Bind mounts (`source` over `target`, both existing) made in a private mount namespace that only dockerd
   * (and the containerd it starts) sees: dockerd is spawned as `unshare --mount --propagation private sh -c
   * 'mount --bind ... && exec dockerd ...'`, so e.g. `/etc/docker/certs.d` or `/etc/hosts` can be replaced
   * without changing the host. Needs `unshare` and root.
   */
  privateMounts?: { source: string; target: string }[];
}

/**
 * Starts a private dockerd: own data-root, exec-root, pidfile, socket and daemon.json, no iptables and no
 * bridge. dockerd 20.10 would otherwise read /etc/docker/daemon.json and create /etc/docker/key.json; the
 * daemon.json `deprecated-key-path` option (there is no flag for it) moves the key into the temp dir.
 */
export async function startDockerd(dir?: string, options: DockerdOptions = {}): Promise<RunningDockerd> {
  const base = dir ?? (await tempDir('dockerd'));
  const sock = path.join(base, 'docker.sock');
  const host = `unix://${sock}`;
  const configFile = path.join(base, 'daemon.json');
  await writeFile(
    configFile,
    JSON.stringify({
      'deprecated-key-path': path.join(base, 'key.json'),
      'insecure-registries': options.insecureRegistries ?? [],
      ...(options.registryMirrors ? { 'registry-mirrors': options.registryMirrors } : {}),
    }),
  );
  const clientConfig = path.join(base, 'client-config');
  await mkdir(clientConfig, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    DOCKER_HOST: host,
    DOCKER_CONFIG: clientConfig,
    DOCKER_CLI_HINTS: 'false',
  };
  const dockerdArgs = [
    '--config-file',
    configFile,
    '--data-root',
    path.join(base, 'root'),
    '--exec-root',
    path.join(base, 'exec'),
    '--pidfile',
    path.join(base, 'docker.pid'),
    '-H',
    host,
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
  ];
  const mounts = options.privateMounts ?? [];
  // Without --fork, unshare and sh exec into dockerd: the child's pid is dockerd's.
  const child = mounts.length
    ? spawn(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          [
            ...mounts.map((m) => `mount --bind ${quote(m.source)} ${quote(m.target)}`),
            'exec dockerd "$@"',
          ].join(' && '),
          'dockerd',
          ...dockerdArgs,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
    : spawn('dockerd', dockerdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.once('error', (err) => (out += `\n${String(err)}`));
  const docker = (args: string[], opts: RunOptions = {}): Promise<RunResult> =>
    run('docker', args, { ...opts, env: { ...env, ...opts.env } });
  const stop = async (): Promise<void> => {
    // dockerd starts its own containerd; it normally stops it, but make sure by its pid file too.
    const extra: number[] = [];
    try {
      const pid = Number(
        (await readFile(path.join(base, 'exec', 'containerd', 'containerd.pid'), 'utf8')).trim(),
      );
      if (pid > 0) extra.push(pid);
    } catch {
      // no pid file
    }
    await stopDaemon(child, 20_000, extra);
    await removeTree(base);
  };
  try {
    await waitFor(
      'dockerd',
      async () => {
        if (child.exitCode !== null) throw new Error(`dockerd exited with ${child.exitCode}:\n${out}`);
        return (await docker(['version'], { allowFailure: true, timeoutMs: 10_000 })).code === 0;
      },
      60_000,
      () => out,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir: base, host, env, docker, output: () => out, stop };
}

// ---------------------------------------------------------------------------------------------------------
// Registry API checks (with fetch, independent of the clients)

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export interface FetchedManifest {
  status: number;
  digest: string | null;
  contentType: string | null;
  bytes: Buffer;
  /** sha256 of the body, to compare with the Docker-Content-Digest header. */
  bodyDigest: string;
  json: unknown;
}

/** GET /v2/<repo>/manifests/<ref> with every manifest media type accepted. */
export async function getManifest(registryUrl: string, repo: string, ref: string): Promise<FetchedManifest> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${ref}`, {
    headers: { Accept: MANIFEST_ACCEPT },
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: unknown = undefined;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    // not JSON
  }
  return {
    status: res.status,
    digest: res.headers.get('docker-content-digest'),
    contentType: res.headers.get('content-type'),
    bytes,
    bodyDigest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    json,
  };
}

/** HEAD /v2/<repo>/manifests/<ref>: the registry's Docker-Content-Digest (throws unless 200). */
export async function headManifestDigest(registryUrl: string, repo: string, ref: string): Promise<string> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${ref}`, {
    method: 'HEAD',
    headers: { Accept: MANIFEST_ACCEPT },
  });
  const digest = res.headers.get('docker-content-digest');
  if (res.status !== 200 || !digest) {
    throw new Error(`HEAD ${repo}:${ref} answered ${res.status} (Docker-Content-Digest: ${digest})`);
  }
  return digest;
}

/** GET a blob and return the sha256 of its bytes (follows redirects). */
export async function blobDigest(registryUrl: string, repo: string, digest: string): Promise<string> {
  const res = await fetch(`${registryUrl}/v2/${repo}/blobs/${digest}`);
  if (res.status !== 200) throw new Error(`GET blob ${repo}@${digest} answered ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Writes a 2-layer image (tag `v1`) and a two-platform index (tag `multi`) as OCI layouts under `dir` and copies
 * them with skopeo to `<host>/<repo>:v1` and `<host>/<repo>:multi` (the seed of the client tests).
 */
export async function seedImageAndIndex(
  dir: string,
  host: string,
  repo: string,
  env: NodeJS.ProcessEnv,
): Promise<{ image: ImageLayout; index: IndexLayout }> {
  const image = await writeImageLayout(dir, { tag: 'v1', layers: 2, layerSize: 512 * 1024 });
  const index = await writeIndexLayout(dir, { tag: 'multi', layers: 1, layerSize: 256 * 1024 });
  await run('skopeo', ['copy', '--dest-tls-verify=false', image.reference, `docker://${host}/${repo}:v1`], {
    env,
  });
  await run(
    'skopeo',
    ['copy', '--all', '--dest-tls-verify=false', index.reference, `docker://${host}/${repo}:multi`],
    {
      env,
    },
  );
  return { image, index };
}
