import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { zstdDecompressor } from '../../src/scanning/inventory/decompress.ts';
import {
  CorruptLayerError,
  TruncatedLayerError,
  UnsupportedLayerError,
  WantedFilesTooLargeError,
} from '../../src/scanning/inventory/errors.ts';
import { inventory, type Inventory } from '../../src/scanning/inventory/inventory.ts';
import { npmCollector } from '../../src/scanning/inventory/collectors/npm.ts';
import { pythonCollector } from '../../src/scanning/inventory/collectors/python.ts';
import { collectWantedFiles, type LayerEntryEvent } from '../../src/scanning/inventory/layers.ts';
import { readTar, type TarEntry } from '../../src/scanning/inventory/tar-reader.ts';
import { buildLayer, paxBody, padded, ustarHeader, type LayerSpec } from '../helpers/tar.ts';

const run = promisify(execFile);

const NODE_MODULES = fileURLToPath(new URL('../../node_modules', import.meta.url));
const NPM_PACKAGES = ['commander', 'fastify', 'jose', 'lru-cache', '@opentelemetry/api', '@sigstore/core'];
const DIST_PACKAGES = '/usr/lib/python3/dist-packages';
/** Python distributions of this machine: [metadata file relative to dist-packages, PEP 503 name, version]. */
const PYTHON = [
  ['PyYAML-6.0.dist-info/METADATA', 'pyyaml', '6.0'],
  ['distro-1.8.0.dist-info/METADATA', 'distro', '1.8.0'],
  ['pip-23.0.1.dist-info/METADATA', 'pip', '23.0.1'],
  ['python_apt-2.6.0.egg-info/PKG-INFO', 'python-apt', '2.6.0'],
  ['crit-3.17.1-py3.11.egg-info', 'crit', '3.17.1'],
] as const;

/** An Alpine 3.18 installed database in apk's format (fields as `apk` writes them, file lists trimmed). */
const APK_INSTALLED = `C:Q1ECyM2nPjGn6OVRmuy3CC0tAymj0=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1698337445
c:c2b4e8b0a5f7e2e6d6f3a2b1a8c9d0e1f2a3b4c5
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1dYxjCDZhRMa+l7Y3QqqoBA1TtkQ=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1Tpe8yvQlq2oXbiDPH5Ml3Zr6MGk=
P:busybox
V:1.36.1-r5
A:x86_64
S:507831
I:962560
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1698156130
c:a0b4d5d8f4e2b5f0c9e3a1d2b6c7e8f9a0b1c2d3
D:so:libc.musl-x86_64.so.1
p:cmd:busybox=1.36.1-r5
F:bin
R:busybox
a:0:0:755
Z:Q1IvPdp0IxqrkKplpTrUvZeJxNcOE=

C:Q1Vyy4Aef8Ib6vxaXDkKKrDiNNMbE=
P:ssl_client
V:1.36.1-r5
A:x86_64
S:4983
I:14336
T:EXternal ssl_client for busybox wget
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1698156130
c:a0b4d5d8f4e2b5f0c9e3a1d2b6c7e8f9a0b1c2d3
D:so:libc.musl-x86_64.so.1 so:libcrypto.so.3 so:libssl.so.3
p:cmd:ssl_client=1.36.1-r5
F:usr/bin
R:ssl_client
a:0:0:755
Z:Q1YVKxNjEaB8q2jQfTbqr2+nMkpls=

C:Q1bE6aXhXwZvSGo5lKg8jWUjtnSvU=
P:libcrypto3
V:3.1.4-r0
A:x86_64
S:1741484
I:4427776
T:Crypto library from openssl
U:https://www.openssl.org/
L:Apache-2.0
o:openssl
m:Ariadne Conill <ariadne@dereferenced.org>
t:1698415329
c:7d1f9c0b7c5e3e9a1b2c3d4e5f60718293a4b5c6
D:so:libc.musl-x86_64.so.1
p:so:libcrypto.so.3=3
F:lib
R:libcrypto.so.3
a:0:0:755
Z:Q1qUlNgNQ5b1m4Bq5h2ZWIrJHWUNo=

C:Q1pNrJ0Kfo4RJXv1VXqLTqCZnzHYk=
P:zlib
V:1.2.13-r1
A:x86_64
S:53476
I:110592
T:A compression/decompression Library
U:https://zlib.net/
L:Zlib
o:zlib
m:Natanael Copa <ncopa@alpinelinux.org>
t:1682715840
c:5ec6a47d5fd1e0c2f5b7b4b8a2f0e9e0d8c1a5b3
D:so:libc.musl-x86_64.so.1
p:so:libz.so.1=1.2.13
F:lib
R:libz.so.1.2.13
a:0:0:755
Z:Q1O8h6tXq0dV8QqZ0PZHzBvKpsVlU=

`;
const ALPINE_OS_RELEASE = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.18.4
PRETTY_NAME="Alpine Linux v3.18"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`;

let work: string;
let osRelease: Buffer;
let dpkgStatus: Buffer;
/** `name version` of every package dpkg-query reports on this machine. */
let dpkgExpected: string[];
/** npm packages: [name, version, package.json content]. */
let npm: [string, string, Buffer][];
let python: [string, Buffer][];

function blob(path: string): Readable {
  return createReadStream(path);
}

function byEcosystem(inv: Inventory, ecosystem: string): string[] {
  return inv.packages
    .filter((p) => p.ecosystem === ecosystem)
    .map((p) => `${p.name} ${p.version}`)
    .sort();
}

async function entriesOf(path: string): Promise<{ entry: TarEntry; body?: Buffer }[]> {
  const out: { entry: TarEntry; body?: Buffer }[] = [];
  for await (const entry of readTar(createReadStream(path))) {
    out.push(entry.type === 'file' && entry.size < 65536 ? { entry, body: await entry.read() } : { entry });
  }
  return out;
}

/** The base of a Debian image built from this machine's real package data. */
function debianBase(): LayerSpec {
  return [
    ['usr/lib/os-release', osRelease],
    ['etc/os-release', { symlink: '../usr/lib/os-release' }],
    ['var/lib/dpkg/status', dpkgStatus],
    ...npm.map(([name, , json]) => [`app/node_modules/${name}/package.json`, json] as const),
    ...python.map(([rel, content]) => [`usr/lib/python3/dist-packages/${rel}`, content] as const),
  ];
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-inventory-'));
  osRelease = await readFile('/etc/os-release');
  dpkgStatus = await readFile('/var/lib/dpkg/status');
  const { stdout } = await run('dpkg-query', ['-W', '-f=${Package} ${Version}\\n'], { maxBuffer: 16 << 20 });
  dpkgExpected = stdout.split('\n').filter(Boolean).sort();
  npm = await Promise.all(
    NPM_PACKAGES.map(async (name) => {
      const json = await readFile(join(NODE_MODULES, name, 'package.json'));
      const parsed = JSON.parse(json.toString()) as { name: string; version: string };
      return [parsed.name, parsed.version, json] as [string, string, Buffer];
    }),
  );
  python = await Promise.all(
    PYTHON.map(async ([rel]) => [rel, await readFile(join(DIST_PACKAGES, rel))] as [string, Buffer]),
  );
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('inventory', () => {
  it('lists the real dpkg, npm and Python packages of a gzip layer, skipping a 50 MiB unwanted file', async () => {
    const layer = await buildLayer(
      work,
      [
        // First, so that every wanted file comes after its body was skipped.
        ['opt/big.bin', { zeros: 50 * 1024 * 1024 }],
        ...debianBase(),
        // The same commander again in a nested node_modules: one package, two locations.
        ['app/node_modules/fastify/node_modules/commander/package.json', npm[0]![2]],
        ['app/node_modules/fastify/README.md', 'not a manifest'],
      ],
      { compression: 'gzip' },
    );
    const events: LayerEntryEvent[] = [];
    const inv = await inventory([blob(layer)], { onEntry: (event) => events.push(event) });

    assert.equal(inv.os?.id, 'debian');
    assert.equal(inv.os?.versionId, '12');
    assert.equal(inv.os?.versionCodename, 'bookworm');
    assert.deepEqual(byEcosystem(inv, 'Debian'), dpkgExpected, 'exactly the packages dpkg-query reports');
    assert.ok(dpkgExpected.length > 100);
    assert.deepEqual(byEcosystem(inv, 'npm'), npm.map(([name, version]) => `${name} ${version}`).sort());
    assert.deepEqual(
      byEcosystem(inv, 'PyPI'),
      PYTHON.map(([, name, version]) => `${name} ${version}`).sort(),
    );
    assert.deepEqual(byEcosystem(inv, 'Alpine'), []);

    const { stdout } = await run('dpkg-query', ['-W', '-f=${Version} ${Architecture} ${Source}', 'libc6']);
    const [libcVersion, libcArch, libcSource] = stdout.trim().split(' ');
    const libc = inv.packages.find((p) => p.ecosystem === 'Debian' && p.name === 'libc6');
    assert.equal(libc?.sourceName, libcSource);
    assert.equal(
      libc?.purl,
      `pkg:deb/debian/libc6@${encodeURIComponent(libcVersion!)}?arch=${libcArch}&distro=debian-12&upstream=${libcSource}`,
    );
    assert.deepEqual(libc?.locations, ['var/lib/dpkg/status']);

    const commander = inv.packages.filter((p) => p.ecosystem === 'npm' && p.name === 'commander');
    assert.equal(commander.length, 1, 'deduplicated by purl');
    assert.equal(commander[0]!.purl, `pkg:npm/commander@${npm[0]![1]}`);
    assert.deepEqual(commander[0]!.locations, [
      'app/node_modules/commander/package.json',
      'app/node_modules/fastify/node_modules/commander/package.json',
    ]);
    const otel = inv.packages.find((p) => p.name === '@opentelemetry/api');
    assert.equal(otel?.purl, `pkg:npm/%40opentelemetry/api@${npm[4]![1]}`);
    assert.equal(inv.packages.find((p) => p.name === 'pyyaml')?.purl, 'pkg:pypi/pyyaml@6.0');

    const big = events.find((e) => e.path === 'opt/big.bin');
    assert.deepEqual(big, { layer: 0, path: 'opt/big.bin', size: 50 * 1024 * 1024, action: 'skipped' });
    assert.ok(
      events.filter((e) => e.action === 'read').every((e) => e.size < 1024 * 1024),
      'nothing large was read into memory',
    );
    assert.deepEqual(
      events.filter((e) => e.path.endsWith('README.md')).map((e) => e.action),
      ['skipped'],
    );

    const sorted = [...inv.packages].sort((a, b) =>
      a.ecosystem === b.ecosystem
        ? a.name < b.name
          ? -1
          : a.name > b.name
            ? 1
            : 0
        : a.ecosystem < b.ecosystem
          ? -1
          : 1,
    );
    assert.deepEqual(
      inv.packages.map((p) => p.purl),
      sorted.map((p) => p.purl),
      'sorted by ecosystem then name',
    );
  });

  it('reads an uncompressed Alpine layer: apk database and os-release', async () => {
    const layer = await buildLayer(
      work,
      [
        // Archived as `./etc/...`, as `tar -C root .` writes layers.
        ['./etc/os-release', ALPINE_OS_RELEASE],
        ['./lib/apk/db/installed', APK_INSTALLED],
      ],
      { format: 'posix', compression: 'none' },
    );
    const inv = await inventory(
      (async function* () {
        yield blob(layer);
      })(),
    );
    assert.deepEqual(inv.os, { id: 'alpine', versionId: '3.18.4', versionCodename: null, idLike: [] });
    assert.deepEqual(byEcosystem(inv, 'Alpine'), [
      'busybox 1.36.1-r5',
      'libcrypto3 3.1.4-r0',
      'musl 1.2.4-r2',
      'ssl_client 1.36.1-r5',
      'zlib 1.2.13-r1',
    ]);
    const musl = inv.packages.find((p) => p.name === 'musl');
    assert.equal(musl?.purl, 'pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4');
    const ssl = inv.packages.find((p) => p.name === 'ssl_client');
    assert.equal(ssl?.sourceName, 'busybox');
    assert.equal(
      ssl?.purl,
      'pkg:apk/alpine/ssl_client@1.36.1-r5?arch=x86_64&distro=alpine-3.18.4&upstream=busybox',
    );
    assert.equal(inv.packages.length, 5);
  });

  it('honours whiteouts, opaque directories and files replaced in upper layers', async () => {
    const statusParagraphs = dpkgStatus.toString().split('\n\n');
    // As after `apt-mark hold` on the second package and `apt-get remove` of a fourth that left its conffiles.
    const held = statusParagraphs[1]!.replace(/^Status: .*$/m, 'Status: hold ok installed');
    const removed = statusParagraphs[3]!.replace(/^Status: .*$/m, 'Status: deinstall ok config-files');
    const trimmedStatus = `${[statusParagraphs[0], held, statusParagraphs[2], removed].join('\n\n')}\n`;
    const kept = statusParagraphs
      .slice(0, 3)
      .map((paragraph) => {
        const name = /^Package: (.+)$/m.exec(paragraph)![1];
        const version = /^Version: (.+)$/m.exec(paragraph)![1];
        return `${name} ${version}`;
      })
      .sort();
    const croner = await readFile(join(NODE_MODULES, 'croner', 'package.json'));
    const cronerVersion = (JSON.parse(croner.toString()) as { version: string }).version;

    const base = await buildLayer(work, [...debianBase(), ['lib/apk/db/installed', APK_INSTALLED]], {
      compression: 'gzip',
    });
    const middle = await buildLayer(work, [
      // Deleting the apk database file of the layer below.
      ['lib/apk/db/.wh.installed', ''],
      // This layer's own package comes before the opaque marker in the tar: it must survive it.
      ['app/node_modules/croner/package.json', croner],
      ['app/node_modules/.wh..wh..opq', ''],
      // A whiteout of a whole directory.
      ['usr/lib/python3/.wh.dist-packages', ''],
    ]);
    const top = await buildLayer(work, [['var/lib/dpkg/status', trimmedStatus]], { compression: 'gzip' });

    const inv = await inventory([blob(base), blob(middle), blob(top)]);
    assert.equal(inv.os?.id, 'debian', 'os-release of the base layer still visible');
    assert.deepEqual(
      byEcosystem(inv, 'Debian'),
      kept,
      'the status file of the top layer wins, installed ones only',
    );
    assert.deepEqual(byEcosystem(inv, 'Alpine'), [], 'the apk database was whited out');
    assert.deepEqual(byEcosystem(inv, 'npm'), [`croner ${cronerVersion}`], 'lower node_modules hidden');
    assert.deepEqual(byEcosystem(inv, 'PyPI'), [], 'the whole dist-packages directory was whited out');

    // The same layers without the middle one: everything below is there.
    const without = await inventory([blob(base), blob(top)]);
    assert.equal(byEcosystem(without, 'Alpine').length, 5);
    assert.equal(byEcosystem(without, 'npm').length, NPM_PACKAGES.length);
    assert.equal(byEcosystem(without, 'PyPI').length, PYTHON.length);
  });

  it('a symlink in an upper layer hides the file below; os-release falls back to usr/lib', async () => {
    const lower = await buildLayer(work, [
      ['etc/os-release', ALPINE_OS_RELEASE],
      ['usr/lib/os-release', osRelease],
    ]);
    const upper = await buildLayer(work, [['etc/os-release', { symlink: '../usr/lib/os-release' }]]);
    assert.equal((await inventory([blob(lower)])).os?.id, 'alpine');
    assert.equal((await inventory([blob(lower), blob(upper)])).os?.id, 'debian');
  });

  it('fails with WantedFilesTooLargeError when the wanted files add up past the total cap', async () => {
    const layer = await buildLayer(work, [
      ['var/lib/dpkg/status', dpkgStatus],
      ['lib/apk/db/installed', APK_INSTALLED],
    ]);
    const total = dpkgStatus.length + Buffer.byteLength(APK_INSTALLED);
    await assert.rejects(inventory([blob(layer)], { maxTotalBytes: total - 1 }), WantedFilesTooLargeError);
    assert.equal(
      (await inventory([blob(layer)], { maxTotalBytes: total })).packages.length,
      dpkgExpected.length + 5,
    );
  });

  it('a directory in an upper layer replaces a file of the same path below', async () => {
    const lower = await buildLayer(work, [['lib/apk/db/installed', APK_INSTALLED]]);
    const upper = await buildLayer(work, [['lib/apk/db/installed', { dir: true }]]);
    assert.equal((await inventory([blob(lower)])).packages.length, 5);
    assert.deepEqual((await inventory([blob(lower), blob(upper)])).packages, []);
  });

  it('keeps only the part of npm and Python metadata the collectors need', async () => {
    const cases = [
      ...npm.map(([name, , json]) => [npmCollector, `app/node_modules/${name}/package.json`, json] as const),
      ...python.map(
        ([rel, content]) => [pythonCollector, `usr/lib/python3/dist-packages/${rel}`, content] as const,
      ),
    ];
    let saved = 0;
    for (const [collector, path, content] of cases) {
      const shrunk = collector.shrink!(path, content);
      assert.ok(shrunk.length <= content.length, path);
      saved += content.length - shrunk.length;
      assert.deepEqual(
        collector.collect(new Map([[path, shrunk]]), null),
        collector.collect(new Map([[path, content]]), null),
        path,
      );
    }
    assert.ok(saved > 10_000, `the descriptions and manifests' other fields were dropped (${saved} bytes)`);

    const pipPath = 'usr/lib/python3/dist-packages/pip-23.0.1.dist-info/METADATA';
    const layer = await buildLayer(work, [[pipPath, python[2]![1]]]);
    const files = await collectWantedFiles([blob(layer)], {
      wants: (path) => pythonCollector.wants(path),
      shrink: (path, content) => pythonCollector.shrink!(path, content),
    });
    assert.deepEqual([...files.keys()], [pipPath]);
    assert.ok(files.get(pipPath)!.length < python[2]![1].length / 2, 'the walker kept the shrunk content');
  });

  it('skips a wanted file over the size cap without reading it', async () => {
    const layer = await buildLayer(work, [['var/lib/dpkg/status', dpkgStatus]]);
    const events: LayerEntryEvent[] = [];
    const inv = await inventory([blob(layer)], { maxFileBytes: 1024, onEntry: (e) => events.push(e) });
    assert.deepEqual(inv.packages, []);
    assert.deepEqual(events, [
      { layer: 0, path: 'var/lib/dpkg/status', size: dpkgStatus.length, action: 'too-large' },
    ]);
  });

  it('reads PAX long path names (posix format)', async () => {
    const deep = `app/${Array.from({ length: 12 }, (_, i) => `node_modules/package-number-${i}`).join('/')}`;
    const path = `${deep}/package.json`;
    assert.ok(path.length > 256, 'too long for ustar name + prefix');
    const layer = await buildLayer(work, [[path, npm[1]![2]]], { format: 'posix' });
    const raw = await readFile(layer);
    assert.ok(raw.includes(Buffer.from(` path=${path}\n`)), 'the archive carries a pax path record');
    const entries = await entriesOf(layer);
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.entry.path, path);
    const inv = await inventory([blob(layer)]);
    assert.deepEqual(
      inv.packages.map((p) => [p.name, p.locations]),
      [[npm[1]![0], [path]]],
    );
  });

  it('reads ustar prefix/name splits and skips pax global headers', async () => {
    const path = `usr/lib/python3/${'site-packages-with-a-long-directory-name/'.repeat(3)}distro-1.8.0.dist-info/METADATA`;
    assert.ok(path.length > 100 && path.length <= 255);
    const ustar = await buildLayer(work, [[path, python[1]![1]]], { format: 'ustar' });
    assert.equal(
      (await readFile(ustar)).subarray(345, 345 + 10).toString(),
      path.slice(0, 10),
      'prefix field used',
    );
    assert.deepEqual(
      (await entriesOf(ustar)).map(({ entry, body }) => [entry.path, body]),
      [[path, python[1]![1]]],
    );

    const withGlobal = await buildLayer(
      work,
      [
        ['etc/os-release', ALPINE_OS_RELEASE],
        ['lib/apk/db/installed', APK_INSTALLED],
      ],
      { format: 'posix', paxOptions: ['comment=built for a test'] },
    );
    const raw = await readFile(withGlobal);
    assert.equal(String.fromCharCode(raw[156]!), 'g', 'the archive starts with a pax global header');
    assert.deepEqual(
      (await entriesOf(withGlobal)).map(({ entry }) => entry.path),
      ['etc/os-release', 'lib/apk/db/installed'],
    );
    assert.equal((await inventory([blob(withGlobal)])).packages.length, 5);
  });

  it('steps over GNU and pax sparse entries (not readable as content) to the entries after them', async () => {
    for (const format of ['gnu', 'posix'] as const) {
      const layer = await buildLayer(
        work,
        [
          ['opt/sparse.bin', { zeros: 20 * 1024 * 1024 }],
          // More fragments than a GNU sparse header holds (4): extension blocks follow the header.
          ['opt/fragmented.bin', { fragments: 12 }],
          ['etc/os-release', ALPINE_OS_RELEASE],
        ],
        { format, sparse: true },
      );
      assert.ok((await readFile(layer)).length < 1024 * 1024, `${format}: the holes were archived as sparse`);
      const entries = await entriesOf(layer);
      assert.deepEqual(
        entries.map(({ entry }) => [entry.path, entry.type]),
        [
          ['opt/sparse.bin', 'other'],
          ['opt/fragmented.bin', 'other'],
          ['etc/os-release', 'file'],
        ],
        format,
      );
      assert.equal(entries[2]!.body?.toString(), ALPINE_OS_RELEASE);
    }
  });

  it('takes path and size from pax records over the ustar fields, global records as defaults', async () => {
    const status = Buffer.from(dpkgStatus.toString().split('\n\n').slice(0, 2).join('\n\n') + '\n');
    const archive = Buffer.concat([
      // A global header naming a default path, then an entry whose own pax record overrides it.
      ustarHeader('pax_global_header', paxBody({ path: 'ignored/by/the/next/record' }).length, 'g'),
      padded(paxBody({ path: 'ignored/by/the/next/record' })),
      ustarHeader(
        'PaxHeaders/status',
        paxBody({ path: './var/lib/dpkg/status', size: String(status.length) }).length,
        'x',
      ),
      padded(paxBody({ path: './var/lib/dpkg/status', size: String(status.length) })),
      // The ustar size field says 0; the pax size is authoritative.
      ustarHeader('short-name', 0, '0'),
      padded(status),
      ustarHeader('etc/os-release', osRelease.length, '0'),
      padded(osRelease),
      Buffer.alloc(1024),
    ]);
    const entries: [string, number][] = [];
    for await (const entry of readTar(Readable.from([archive]))) entries.push([entry.path, entry.size]);
    assert.deepEqual(entries, [
      ['var/lib/dpkg/status', status.length],
      // The global path applies to every entry without its own: here, the one after.
      ['ignored/by/the/next/record', osRelease.length],
    ]);
    const inv = await inventory([Readable.from([archive])]);
    assert.equal(byEcosystem(inv, 'Debian').length, 2);
  });

  it('reads distroless dpkg databases: status.d files without Status fields', async () => {
    const paragraphs = dpkgStatus
      .toString()
      .split('\n\n')
      .filter((p) => p.startsWith('Package: '))
      .slice(0, 4);
    const spec: [string, string][] = paragraphs.map((paragraph) => {
      const name = /^Package: (.+)$/m.exec(paragraph)![1]!;
      return [`var/lib/dpkg/status.d/${name}`, `${paragraph.replace(/^Status: .*\n/m, '')}\n`];
    });
    spec.push([
      `var/lib/dpkg/status.d/${/^Package: (.+)$/m.exec(paragraphs[0]!)![1]}.md5sums`,
      'not control data\n',
    ]);
    const layer = await buildLayer(work, [['etc/os-release', osRelease], ...spec]);
    const inv = await inventory([blob(layer)]);
    const expected = paragraphs
      .map((p) => `${/^Package: (.+)$/m.exec(p)![1]} ${/^Version: (.+)$/m.exec(p)![1]}`)
      .sort();
    assert.deepEqual(byEcosystem(inv, 'Debian'), expected);
    assert.ok(spec.every(([, text]) => !/^Status:/m.test(text)));
  });

  it('reads GNU long names and long link names (gnu format), and hardlinks to wanted files', async () => {
    const longDir = `app/${'a-directory-with-a-long-name/'.repeat(5)}node_modules/jose`;
    const linkTarget = `../../${'x'.repeat(120)}`;
    const layer = await buildLayer(work, [
      [`${longDir}/package.json`, npm[2]![2]],
      ['app/long-link', { symlink: linkTarget }],
      ['app/node_modules/jose/package.json', { hardlink: `${longDir}/package.json` }],
    ]);
    const raw = await readFile(layer);
    assert.ok(raw.includes(Buffer.from('././@LongLink')), 'the archive carries GNU long-name entries');
    const entries = await entriesOf(layer);
    assert.deepEqual(
      entries.map(({ entry }) => [entry.path, entry.type, entry.linkname]),
      [
        [`${longDir}/package.json`, 'file', ''],
        ['app/long-link', 'symlink', linkTarget],
        ['app/node_modules/jose/package.json', 'hardlink', `${longDir}/package.json`],
      ],
    );
    assert.deepEqual(entries[0]!.body, npm[2]![2]);
    assert.equal(entries[0]!.entry.mode, 0o644);
    const inv = await inventory([blob(layer)]);
    assert.deepEqual(
      inv.packages.map((p) => [p.name, p.locations]),
      [[npm[2]![0], [`${longDir}/package.json`, 'app/node_modules/jose/package.json']]],
    );
  });

  it('rejects a header with a bad checksum as CorruptLayerError', async () => {
    const layer = await buildLayer(work, [['etc/os-release', osRelease]]);
    const raw = await readFile(layer);
    raw[0] = raw[0]! ^ 0x01; // one bit of the name
    await assert.rejects(inventory([Readable.from([raw])]), CorruptLayerError);
  });

  it('rejects a stream cut inside a body or a header as TruncatedLayerError', async () => {
    const layer = await buildLayer(work, [
      ['var/lib/dpkg/status', dpkgStatus],
      ['etc/os-release', osRelease],
    ]);
    const raw = await readFile(layer);
    await assert.rejects(inventory([Readable.from([raw.subarray(0, 512 + 1000)])]), TruncatedLayerError);
    const secondHeader = 512 + Math.ceil(dpkgStatus.length / 512) * 512;
    await assert.rejects(
      inventory([Readable.from([raw.subarray(0, secondHeader + 100)])]),
      TruncatedLayerError,
    );

    const gz = await readFile(
      await buildLayer(work, [['var/lib/dpkg/status', dpkgStatus]], { compression: 'gzip' }),
    );
    await assert.rejects(inventory([Readable.from([gz.subarray(0, gz.length >> 1)])]), TruncatedLayerError);
  });

  it('rejects damaged gzip data as CorruptLayerError and passes on the own error of a failing source stream', async () => {
    const gz = await readFile(
      await buildLayer(work, [['var/lib/dpkg/status', dpkgStatus]], { compression: 'gzip' }),
    );
    const damaged = Buffer.from(gz);
    for (let i = 100; i < 200; i++) damaged[i] = damaged[i]! ^ 0xff;
    await assert.rejects(inventory([Readable.from([damaged])]), CorruptLayerError);

    await assert.rejects(inventory([blob(join(work, 'no-such-layer.tar.gz'))]), { code: 'ENOENT' });
    const failing = new Readable({
      read() {
        this.push(gz.subarray(0, 1000));
        this.destroy(new Error('connection reset by the storage backend'));
      },
    });
    await assert.rejects(inventory([failing]), /connection reset by the storage backend/);
  });

  it('reads the layer whatever its media type would say: compression comes from the magic bytes', async () => {
    const spec: LayerSpec = [
      ['etc/os-release', ALPINE_OS_RELEASE],
      ['lib/apk/db/installed', APK_INSTALLED],
    ];
    const plain = await inventory([blob(await buildLayer(work, spec))]);
    const gzip = await inventory([blob(await buildLayer(work, spec, { compression: 'gzip' }))]);
    assert.deepEqual(gzip, plain);
    assert.equal(plain.packages.length, 5);
  });

  it(
    zstdDecompressor()
      ? 'reads a zstd layer (this Node has zlib zstd)'
      : `rejects a zstd layer as UnsupportedLayerError (Node ${process.version} has no zlib zstd)`,
    async () => {
      const zst = await buildLayer(
        work,
        [
          ['etc/os-release', ALPINE_OS_RELEASE],
          ['lib/apk/db/installed', APK_INSTALLED],
        ],
        {
          compression: 'zstd',
        },
      );
      assert.deepEqual([...(await readFile(zst)).subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
      if (zstdDecompressor()) {
        const inv = await inventory([blob(zst)]);
        assert.equal(inv.os?.id, 'alpine');
        assert.equal(inv.packages.length, 5);
      } else {
        await assert.rejects(inventory([blob(zst)]), (err: unknown) => {
          assert.ok(err instanceof UnsupportedLayerError);
          assert.match(err.message, /zstd/);
          return true;
        });
      }
    },
  );

  it('an empty layer and an empty stack give an empty inventory', async () => {
    const empty = join(work, 'empty.tar');
    await writeFile(empty, Buffer.alloc(1024));
    assert.deepEqual(await inventory([blob(empty)]), { os: null, packages: [] });
    assert.deepEqual(await inventory([]), { os: null, packages: [] });
  });
});
