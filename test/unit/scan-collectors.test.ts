/**
 * The collectors of rpm databases, Go executables, Java archives and npm/yarn lockfiles, run through
 * `inventory()` over real layers built with GNU tar; fixtures come from the real tools where this machine has
 * them (rpm and rpmbuild, the jar tool, zip, Go executables of Debian packages).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import {
  goPackages,
  parseBuildInfo,
  parseModinfo,
  scanGoBinary,
  stdlibVersion,
} from '../../src/scanning/inventory/collectors/go-binary.ts';
import { scanJavaArchive } from '../../src/scanning/inventory/collectors/java.ts';
import { parsePackageLock, parseYarnLock } from '../../src/scanning/inventory/collectors/npm.ts';
import { parseRpmHeader, readRpmdbHeaders, RPMTAG } from '../../src/scanning/inventory/collectors/rpm.ts';
import { inventory, type Inventory } from '../../src/scanning/inventory/inventory.ts';
import type { LayerEntryEvent } from '../../src/scanning/inventory/layers.ts';
import { readTar } from '../../src/scanning/inventory/tar-reader.ts';
import type { Package } from '../../src/scanning/inventory/types.ts';
import { encodeRpmHeader, writeRpmdb } from '../helpers/rpm.ts';
import { skipOrFail } from '../helpers/skip.ts';
import { buildLayer, type LayerSpec } from '../helpers/tar.ts';

const run = promisify(execFile);

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-scan-collectors-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function hasTool(command: string, args: string[]): Promise<boolean> {
  try {
    await run(command, args);
    return true;
  } catch {
    return false;
  }
}

/** The inventory of layers built from `specs` (bottom first). */
async function inventoryOf(
  specs: LayerSpec[],
  onEntry?: (event: LayerEntryEvent) => void,
): Promise<Inventory> {
  const blobs: string[] = [];
  for (const spec of specs) blobs.push(await buildLayer(work, spec, { compression: 'gzip' }));
  return inventory(
    blobs.map((path) => createReadStream(path)),
    onEntry ? { onEntry } : {},
  );
}

function ofEcosystem(inv: Inventory, ecosystem: Package['ecosystem']): Package[] {
  return inv.packages.filter((pkg) => pkg.ecosystem === ecosystem);
}

const ROCKY_OS_RELEASE = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n';

describe('rpm databases', () => {
  it('reads the rpmdb.sqlite that rpm itself writes, as rpm -qa reports it', async (t) => {
    if (!(await hasTool('rpmbuild', ['--version'])) || !(await hasTool('rpm', ['--version']))) {
      t.skip(skipOrFail('rpm and rpmbuild are not installed here') || undefined);
      return;
    }
    const dir = join(work, 'rpm-real');
    await mkdir(dir, { recursive: true });
    // One spec, two binary packages from one source package: one with an epoch, a subpackage without.
    await writeFile(
      join(dir, 'demo.spec'),
      [
        'Name: berth-demo',
        'Version: 1.2.3',
        'Release: 4.el9',
        'Epoch: 2',
        'Summary: Demo',
        'License: MIT',
        'BuildArch: noarch',
        '%description',
        'Demo.',
        '%package -n berth-demo-libs',
        'Summary: Libs',
        'Epoch: 0',
        '%description -n berth-demo-libs',
        'Libs.',
        '%files',
        '%files -n berth-demo-libs',
        '',
      ].join('\n'),
    );
    await writeFile(
      join(dir, 'other.spec'),
      'Name: other-tool\nVersion: 0.9~rc1\nRelease: 1.el9_3\nSummary: x\nLicense: MIT\nBuildArch: noarch\n%description\nx\n%files\n',
    );
    const top = join(dir, 'top');
    for (const spec of ['demo.spec', 'other.spec']) {
      await run('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${top}`, join(dir, spec)]);
    }
    const dbpath = join(dir, 'db');
    await run('rpm', ['--initdb', '--dbpath', dbpath]);
    const rpms = ['berth-demo-1.2.3-4.el9', 'berth-demo-libs-1.2.3-4.el9', 'other-tool-0.9~rc1-1.el9_3'].map(
      (name) => join(top, 'RPMS', 'noarch', `${name}.noarch.rpm`),
    );
    await run('rpm', [
      '-i',
      '--justdb',
      '--nodeps',
      '--noscripts',
      '--ignorearch',
      '--ignoreos',
      '--dbpath',
      dbpath,
      ...rpms,
    ]);
    const { stdout } = await run('rpm', [
      '-qa',
      '--dbpath',
      dbpath,
      '--qf',
      '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\n',
    ]);
    const expected = stdout
      .trim()
      .split('\n')
      .map((line) => line.split('\t'))
      .sort();
    assert.equal(expected.length, 3);

    const inv = await inventoryOf([
      [
        ['etc/os-release', ROCKY_OS_RELEASE],
        ['var/lib/rpm/rpmdb.sqlite', await readFile(join(dbpath, 'rpmdb.sqlite'))],
      ],
    ]);
    const packages = ofEcosystem(inv, 'Rocky Linux');
    assert.deepEqual(
      packages
        .map((pkg) => [
          pkg.name,
          pkg.version,
          /arch=([^&]+)/.exec(pkg.purl)?.[1],
          decodeURIComponent(/upstream=([^&]+)/.exec(pkg.purl)?.[1] ?? ''),
        ])
        .sort(),
      expected,
    );
    const demo = packages.find((pkg) => pkg.name === 'berth-demo')!;
    assert.equal(demo.version, '2:1.2.3-4.el9');
    assert.equal(demo.sourceName, 'berth-demo');
    assert.equal(demo.sourceVersion, '2:1.2.3-4.el9');
    assert.equal(
      demo.purl,
      'pkg:rpm/rocky/berth-demo@1.2.3-4.el9?arch=noarch&distro=rocky-9.3&epoch=2&upstream=berth-demo-1.2.3-4.el9.src.rpm',
    );
    const libs = packages.find((pkg) => pkg.name === 'berth-demo-libs')!;
    assert.equal(libs.sourceName, 'berth-demo', 'the subpackage names its source package');
    assert.deepEqual(demo.locations, ['var/lib/rpm/rpmdb.sqlite']);
  });

  it('reads encoded headers from a database over the default 8 MiB cap, skipping keys and broken headers', async () => {
    const header = (
      name: string,
      version: string,
      release: string | null,
      extra: [number, string | number][] = [],
    ) => {
      const tags = new Map<number, string | number>([
        [RPMTAG.NAME, name],
        [RPMTAG.VERSION, version],
      ]);
      if (release !== null) tags.set(RPMTAG.RELEASE, release);
      for (const [tag, value] of extra) tags.set(tag, value);
      return encodeRpmHeader(tags);
    };
    const blobs = [
      header('openssl', '3.0.8', '150500.5.8.1', [
        [RPMTAG.ARCH, 'x86_64'],
        [RPMTAG.SOURCERPM, 'openssl-3-3.0.8-150500.5.8.1.src.rpm'],
        [RPMTAG.EPOCH, 1],
      ]),
      header('gpg-pubkey', '39db7c82', '5f68629b'),
      header('no-release', '1.0', null),
      header('truncated', '1.0', '1').subarray(0, 30),
      Buffer.from('not a header'),
    ];
    const path = join(work, 'big-rpmdb.sqlite');
    writeRpmdb(path, blobs, 9 * 1024 * 1024);
    const file = await readFile(path);
    assert.ok(file.length > 8 * 1024 * 1024, `database of ${file.length} bytes`);
    // Written in WAL mode as rpm writes it; reading leaves the bytes as they were.
    assert.deepEqual([file[18], file[19]], [2, 2]);
    assert.equal(readRpmdbHeaders(file).length, blobs.length);
    assert.deepEqual([file[18], file[19]], [2, 2]);
    const events: LayerEntryEvent[] = [];
    const inv = await inventoryOf(
      [
        [
          ['usr/lib/os-release', 'ID="opensuse-leap"\nVERSION_ID="15.5"\nID_LIKE="suse opensuse"\n'],
          ['usr/lib/sysimage/rpm/rpmdb.sqlite', file],
        ],
      ],
      (event) => events.push(event),
    );
    assert.equal(events.find((event) => event.path.endsWith('rpmdb.sqlite'))?.action, 'read');
    assert.deepEqual(inv.packages, [
      {
        ecosystem: 'openSUSE',
        name: 'openssl',
        version: '1:3.0.8-150500.5.8.1',
        sourceName: 'openssl-3',
        sourceVersion: '1:3.0.8-150500.5.8.1',
        purl: 'pkg:rpm/opensuse/openssl@3.0.8-150500.5.8.1?arch=x86_64&distro=opensuse-leap-15.5&epoch=1&upstream=openssl-3-3.0.8-150500.5.8.1.src.rpm',
        locations: ['usr/lib/sysimage/rpm/rpmdb.sqlite'],
      },
    ]);
  });

  it('gives nothing, without failing, for a database path holding something else', async () => {
    const inv = await inventoryOf([
      [
        ['etc/os-release', 'ID=rhel\nVERSION_ID=9.3\n'],
        [
          'var/lib/rpm/rpmdb.sqlite',
          Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.alloc(4096, 7)]),
        ],
        ['usr/lib/sysimage/rpm/rpmdb.sqlite', 'plain text'],
      ],
    ]);
    assert.deepEqual(inv.packages, []);
    assert.equal(inv.os?.id, 'rhel');
  });

  it('parses header entries wherever the index points, refusing out-of-range ones', () => {
    const blob = encodeRpmHeader(
      new Map<number, string | number>([
        [RPMTAG.EPOCH, 7],
        [RPMTAG.NAME, 'bash'],
        [RPMTAG.VERSION, '5.1.8'],
      ]),
    );
    assert.deepEqual(parseRpmHeader(blob), {
      name: 'bash',
      version: '5.1.8',
      release: null,
      epoch: 7,
      arch: null,
      sourceRpm: null,
    });
    // An entry count that claims more entries than the blob holds.
    const lying = Buffer.from(blob);
    lying.writeUInt32BE(1000, 0);
    assert.equal(parseRpmHeader(lying), null);
    assert.equal(parseRpmHeader(Buffer.alloc(3)), null);
  });
});

/** Go build information as the Go >= 1.18 linker lays it out: header, then varint-prefixed strings. */
function buildInfoBlob(goVersion: string, modinfo: string): Buffer {
  const varint = (n: number): Buffer => {
    const bytes: number[] = [];
    while (n >= 0x80) {
      bytes.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    bytes.push(n);
    return Buffer.from(bytes);
  };
  const header = Buffer.alloc(32);
  header.write('\xff Go buildinf:', 0, 'latin1');
  header[14] = 8; // pointer size
  header[15] = 2; // inline strings
  // The module information is wrapped in two 16-byte sentinels, the last one preceded by a newline.
  const mod = Buffer.concat([
    Buffer.from('3077af0c9274080241e1c107e6d618e6', 'hex'),
    Buffer.from(modinfo),
    Buffer.from('f932433186182072008242104116d8f2', 'hex'),
  ]);
  const version = Buffer.from(goVersion);
  return Buffer.concat([header, varint(version.length), version, varint(mod.length), mod]);
}

/** A fake ELF executable of `size` bytes with `info` at the 16-aligned offset `at`, and a decoy magic before. */
function fakeElf(size: number, at: number, info: Buffer): Buffer {
  const file = Buffer.alloc(size);
  for (let i = 0; i < size; i++) file[i] = (i * 7919) & 0xff;
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(file, 0);
  // An unaligned occurrence of the magic followed by garbage, as string data can hold: not build information.
  file.write('\xff Go buildinf:\x08\x02garbage', 1003, 'latin1');
  info.copy(file, at);
  return file;
}

const MODINFO = [
  'path\texample.com/app/cmd/app',
  'mod\texample.com/app\tv1.2.3\th1:abc=',
  'dep\tgithub.com/a/b\tv0.1.0\th1:def=',
  'dep\tgithub.com/c/d\tv1.0.0\th1:ghi=',
  '=>\tgithub.com/e/d\tv1.1.0\th1:jkl=',
  'dep\tlocal.example/x\tv0.0.1',
  '=>\t../x\t',
  'dep\tgolang.org/x/sys\tv0.0.0-20230101000000-abcdef123456\th1:mno=',
  'build\t-compiler=gc',
  'build\tGOOS=linux',
  '',
].join('\n');

describe('Go executables', () => {
  it('streams executables for build information: main module, dependencies with replacements, stdlib', async () => {
    const app = fakeElf(300_000, 65_536 - 16, buildInfoBlob('go1.21.5', MODINFO));
    const tool = fakeElf(
      70_000,
      4096,
      buildInfoBlob('go1.22rc1 X:boringcrypto', 'path\texample.com/tool\nmod\texample.com/tool\t(devel)\t\n'),
    );
    const events: LayerEntryEvent[] = [];
    const inv = await inventoryOf(
      [
        [
          ['usr/local/bin/app', { data: app, mode: 0o755 }],
          ['usr/local/bin/tool', { data: tool, mode: 0o750 }],
          // Not executable: not read at all. An executable script: read up to its first bytes only.
          ['opt/app.copy', { data: app, mode: 0o644 }],
          ['usr/local/bin/script', { data: Buffer.concat([Buffer.from('#!/bin/sh\n'), app]), mode: 0o755 }],
          ['var/lib/dpkg/status', 'Package: after\nStatus: install ok installed\nVersion: 1.0\n'],
        ],
      ],
      (event) => events.push(event),
    );
    const go = ofEcosystem(inv, 'Go');
    assert.deepEqual(
      go.map((pkg) => [pkg.name, pkg.version, pkg.purl, pkg.locations.join(',')]),
      [
        ['example.com/app', 'v1.2.3', 'pkg:golang/example.com/app@v1.2.3', 'usr/local/bin/app'],
        ['github.com/a/b', 'v0.1.0', 'pkg:golang/github.com/a/b@v0.1.0', 'usr/local/bin/app'],
        ['github.com/e/d', 'v1.1.0', 'pkg:golang/github.com/e/d@v1.1.0', 'usr/local/bin/app'],
        [
          'golang.org/x/sys',
          'v0.0.0-20230101000000-abcdef123456',
          'pkg:golang/golang.org/x/sys@v0.0.0-20230101000000-abcdef123456',
          'usr/local/bin/app',
        ],
        ['stdlib', '1.21.5', 'pkg:golang/stdlib@1.21.5', 'usr/local/bin/app'],
        ['stdlib', '1.22.0-rc.1', 'pkg:golang/stdlib@1.22.0-rc.1', 'usr/local/bin/tool'],
      ],
    );
    // The entry after the partly read script is intact.
    assert.deepEqual(
      ofEcosystem(inv, 'Debian').map((pkg) => pkg.name),
      ['after'],
    );
    const actions = Object.fromEntries(events.map((event) => [event.path, event.action]));
    assert.equal(actions['opt/app.copy'], 'skipped');
    assert.equal(actions['usr/local/bin/script'], 'streamed');
  });

  it('a whiteout in an upper layer removes the executable and its packages; hard links keep theirs', async () => {
    const app = fakeElf(100_000, 50_000 - (50_000 % 16), buildInfoBlob('go1.20', MODINFO));
    const inv = await inventoryOf([
      [
        ['usr/bin/a', { data: app, mode: 0o755 }],
        ['usr/bin/b', { data: app, mode: 0o755 }],
        ['usr/bin/b-link', { hardlink: 'usr/bin/b' }],
      ],
      [['usr/bin/.wh.a', '']],
    ]);
    const go = ofEcosystem(inv, 'Go');
    assert.ok(go.length > 0);
    // A hard link to a streamed executable has its packages too.
    assert.ok(go.every((pkg) => pkg.locations.join() === 'usr/bin/b,usr/bin/b-link'));
    assert.ok(go.some((pkg) => pkg.name === 'stdlib' && pkg.version === '1.20.0'));
  });

  it("reads the Go version of a real Go executable as the binary's own version string says", async (t) => {
    const binary = '/usr/bin/skopeo';
    if (!existsSync(binary)) {
      t.skip(
        skipOrFail(`${binary} (Debian package skopeo, a Go program) is not installed here`) || undefined,
      );
      return;
    }
    const content = await readFile(binary);
    // Independently: the runtime's version string, a printable run of its own, as `strings | grep ^go1` finds.
    const runs = new Set<string>();
    for (const m of content
      .toString('latin1')
      .matchAll(/(?<![\x20-\x7e])go1\.\d+(?:\.\d+)?(?![\x20-\x7e])/g)) {
      runs.add(m[0]);
    }
    assert.equal(runs.size, 1, `version strings found: ${[...runs].join(', ')}`);
    const inv = await inventoryOf([[['usr/bin/skopeo', { data: content, mode: 0o755 }]]]);
    const stdlib = ofEcosystem(inv, 'Go').filter((pkg) => pkg.name === 'stdlib');
    assert.equal(stdlib.length, 1);
    assert.equal(`go${stdlib[0]!.version.replace(/\.0$/, '')}`, [...runs][0]!.replace(/\.0$/, ''));
  });

  it('finds build information whatever the chunking of the stream, a magic split across chunks included', async () => {
    const app = fakeElf(20_000, 8_192, buildInfoBlob('go1.21.5', MODINFO));
    for (const size of [1, 5, 13, 14, 15, 100, 8_190, 65_536]) {
      const chunks = async function* (): AsyncGenerator<Buffer> {
        for (let i = 0; i < app.length; i += size) yield app.subarray(i, i + size);
      };
      const info = await scanGoBinary(chunks());
      assert.equal(info?.goVersion, 'go1.21.5', `chunks of ${size}`);
      assert.equal(info?.modinfo, MODINFO);
    }
  });

  it('parses build information, module lines and toolchain versions; refuses what is not build information', () => {
    const blob = buildInfoBlob('go1.21.5', MODINFO);
    const parsed = parseBuildInfo(blob);
    assert.equal(parsed.info?.goVersion, 'go1.21.5');
    assert.equal(parsed.info?.modinfo, MODINFO);
    assert.deepEqual(parseBuildInfo(blob.subarray(0, blob.length - 5)), { complete: false, info: null });
    const pointers = Buffer.from(blob);
    pointers[15] = 0; // pre-1.18: pointers, not inline strings
    assert.deepEqual(parseBuildInfo(pointers), { complete: true, info: null });
    assert.deepEqual(parseModinfo(MODINFO).main, { path: 'example.com/app', version: 'v1.2.3' });
    assert.equal(stdlibVersion('go1.21.5'), '1.21.5');
    assert.equal(stdlibVersion('go1.20'), '1.20.0');
    assert.equal(stdlibVersion('go1.21beta2'), '1.21.0-beta.2');
    assert.equal(stdlibVersion('devel go1.22-abc'), null);
    assert.deepEqual(
      goPackages({ goVersion: 'devel +abc', modinfo: 'mod\tx.example/m\t(devel)\t\n' }, 'bin/x'),
      [],
    );
  });
});

describe('Java archives', () => {
  const pom = (group: string, artifact: string, version: string): string =>
    `#Generated by Maven\n#Tue Dec 01 10:00:00 UTC 2026\nversion=${version}\ngroupId=${group}\nartifactId=${artifact}\n`;

  /** Writes `files` under a fresh directory and archives it with `jar` (options such as `cf0`) or `zip`. */
  async function archive(
    name: string,
    files: Record<string, string | Buffer>,
    tool: 'jar' | 'jar0' | 'zip' | 'zip-pipe',
  ) {
    const root = join(work, `java-${name}`);
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(root, path, '..'), { recursive: true });
      await writeFile(join(root, path), content);
    }
    const out = join(work, name);
    if (tool === 'zip') await run('zip', ['-q', '-r', out, '.'], { cwd: root });
    // Written to a pipe, zip cannot seek back to fill in sizes: stored entries get data descriptors.
    else if (tool === 'zip-pipe') await run('sh', ['-c', `zip -q -0 -r - . | cat > '${out}'`], { cwd: root });
    else await run('jar', [tool === 'jar0' ? 'cf0' : 'cf', out, '-C', root, '.']);
    return readFile(out);
  }

  it('finds pom.properties in jars, wars and the jars nested in them, streamed through deflate and stored entries', async (t) => {
    if (!(await hasTool('jar', ['--version'])) || !(await hasTool('zip', ['-v']))) {
      t.skip(skipOrFail('the jar tool (a JDK) or zip is not installed here') || undefined);
      return;
    }
    const noise = Buffer.alloc(400_000);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    const lib = await archive(
      'lib.jar',
      {
        'META-INF/maven/org.example/lib/pom.properties': pom('org.example', 'lib', '1.4.2'),
        'org/example/Lib.class': noise,
        'org/example/text.txt': 'line\n'.repeat(50_000),
      },
      'jar',
    );
    const plain = await archive('plain.jar', { 'README.txt': 'no maven metadata here' }, 'jar');
    const files = {
      'META-INF/maven/com.acme/app/pom.properties': pom('com.acme', 'app', '2.0.0-SNAPSHOT'),
      'BOOT-INF/lib/lib.jar': lib,
      'BOOT-INF/lib/plain.jar': plain,
      'BOOT-INF/classes/big.bin': noise,
    };
    // Spring Boot's layout (nested jars stored), the jar tool's default (deflated, data descriptors) and zip's.
    const stored = await archive('app-stored.jar', files, 'jar0');
    const deflated = await archive('app.war', files, 'jar');
    const zipped = await archive('app-zip.ear', files, 'zip');
    const piped = await archive('app-piped.jar', files, 'zip-pipe');
    // The nested jar is a stored entry with a data descriptor (general purpose flag bit 3) there.
    const nestedHeader = piped.lastIndexOf(
      Buffer.from('PK\x03\x04', 'latin1'),
      piped.indexOf('BOOT-INF/lib/lib.jar'),
    );
    assert.equal(piped.readUInt16LE(nestedHeader + 6) & 8, 8);
    assert.equal(piped.readUInt16LE(nestedHeader + 8), 0);
    // An archive cut short just after the local header of its last entry: the entries before that count.
    const entryNames = [
      'META-INF/maven/com.acme/app/pom.properties',
      'BOOT-INF/lib/lib.jar',
      'BOOT-INF/lib/plain.jar',
      'BOOT-INF/classes/big.bin',
    ];
    const last = Math.max(...entryNames.map((name) => deflated.indexOf(name)));
    const cut = last + 60;
    const beforeCut = (name: string): boolean => {
      const at = deflated.indexOf(name);
      return at !== -1 && at < last;
    };
    const cutHasApp = beforeCut('META-INF/maven/com.acme/app/pom.properties');
    const cutHasLib = beforeCut('BOOT-INF/lib/lib.jar');
    assert.ok(cutHasApp || cutHasLib, 'the cut archive still holds an artifact');
    const inv = await inventoryOf([
      [
        ['app/app.jar', stored],
        ['app/app.war', deflated],
        ['app/app.ear', { data: zipped, mode: 0o755 }],
        ['app/app-piped.jar', piped],
        ['app/lib.jar', lib],
        ['app/not-a-zip.jar', 'plain text'],
        ['app/cut.jar', deflated.subarray(0, cut)],
      ],
    ]);
    const maven = ofEcosystem(inv, 'Maven');
    assert.deepEqual(
      maven.map((pkg) => [pkg.name, pkg.version, pkg.purl, pkg.locations.join(',')]),
      [
        [
          'com.acme:app',
          '2.0.0-SNAPSHOT',
          'pkg:maven/com.acme/app@2.0.0-SNAPSHOT',
          `app/app-piped.jar,app/app.ear,app/app.jar,app/app.war${cutHasApp ? ',app/cut.jar' : ''}`,
        ],
        [
          'org.example:lib',
          '1.4.2',
          'pkg:maven/org.example/lib@1.4.2',
          `app/app-piped.jar,app/app.ear,app/app.jar,app/app.war${cutHasLib ? ',app/cut.jar' : ''},app/lib.jar`,
        ],
      ],
    );
    assert.deepEqual(
      ofEcosystem(inv, 'Go'),
      [],
      'the executable .ear is read as an archive, not an executable',
    );
  });
});

describe('npm lockfiles', () => {
  it("pins the packages of this project's real package-lock.json, merged with the installed manifest", async () => {
    const lockPath = fileURLToPath(new URL('../../package-lock.json', import.meta.url));
    const manifestPath = fileURLToPath(new URL('../../node_modules/fastify/package.json', import.meta.url));
    const lock = await readFile(lockPath);
    const manifest = await readFile(manifestPath);
    const parsed = JSON.parse(lock.toString('utf8')) as { packages: Record<string, { version?: string }> };
    const inv = await inventoryOf([
      [
        ['srv/app/package-lock.json', lock],
        ['srv/app/node_modules/fastify/package.json', manifest],
        [
          'srv/app/node_modules/fastify/package-lock.json',
          '{"packages":{"node_modules/ignored":{"version":"1.0.0"}}}',
        ],
      ],
    ]);
    const npm = ofEcosystem(inv, 'npm');
    const fastify = npm.filter((pkg) => pkg.name === 'fastify');
    assert.deepEqual(
      fastify.map((pkg) => [pkg.version, pkg.locations]),
      [
        [
          parsed.packages['node_modules/fastify']!.version,
          ['srv/app/node_modules/fastify/package.json', 'srv/app/package-lock.json'],
        ],
      ],
    );
    assert.equal(
      npm.find((pkg) => pkg.name === 'ignored'),
      undefined,
      'lockfiles inside node_modules are not read',
    );
    for (const name of ['commander', 'jose', '@sigstore/core']) {
      const version = parsed.packages[`node_modules/${name}`]?.version;
      assert.ok(version, name);
      assert.ok(
        npm.some((pkg) => pkg.name === name && pkg.version === version),
        `${name}@${version}`,
      );
    }
  });

  it('reads lockfile versions 1 to 3 and yarn.lock version 1; leaves out links, aliases and non-registry pins', () => {
    const v1 = JSON.stringify({
      name: 'app',
      lockfileVersion: 1,
      dependencies: {
        'left-pad': {
          version: '1.3.0',
          resolved: 'https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz',
        },
        express: {
          version: '4.18.2',
          dependencies: { debug: { version: '2.6.9' } },
        },
        local: { version: 'file:../local' },
        gitdep: { version: 'git+https://github.com/x/y.git#abc' },
      },
    });
    assert.deepEqual(parsePackageLock(v1).sort(), [
      ['debug', '2.6.9'],
      ['express', '4.18.2'],
      ['left-pad', '1.3.0'],
    ]);
    const v3 = JSON.stringify({
      name: 'app',
      lockfileVersion: 3,
      packages: {
        '': { name: 'app', version: '1.0.0' },
        'node_modules/@scope/pkg': { version: '2.0.0' },
        'node_modules/a/node_modules/b': { version: '0.1.0-beta.1' },
        'node_modules/alias': { name: 'real-name', version: '3.1.4' },
        'node_modules/linked': { resolved: 'packages/linked', link: true },
        'packages/linked': { name: 'linked', version: '0.0.1' },
      },
      // A v2 lockfile repeats the tree in v1 form; `packages` wins.
      dependencies: { stale: { version: '9.9.9' } },
    });
    assert.deepEqual(parsePackageLock(v3).sort(), [
      ['@scope/pkg', '2.0.0'],
      ['b', '0.1.0-beta.1'],
      ['real-name', '3.1.4'],
    ]);
    for (const bad of ['', 'null', '[1]', '{"packages":{"node_modules/x":7}}', '{"dependencies":"x"}']) {
      assert.deepEqual(parsePackageLock(bad), []);
    }
    const yarn = [
      '# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.',
      '# yarn lockfile v1',
      '',
      '',
      '"@babel/code-frame@^7.0.0", "@babel/code-frame@^7.10.4":',
      '  version "7.12.13"',
      '  resolved "https://registry.yarnpkg.com/@babel/code-frame/-/code-frame-7.12.13.tgz#dcfc826beef65e75c50e21d3837d7d95798dd658"',
      '  dependencies:',
      '    "@babel/highlight" "^7.12.13"',
      '',
      'lodash@^4.17.21:',
      '  version "4.17.21"',
      '',
    ].join('\n');
    assert.deepEqual(parseYarnLock(yarn), [
      ['@babel/code-frame', '7.12.13'],
      ['lodash', '4.17.21'],
    ]);
    assert.deepEqual(parseYarnLock('__metadata:\n  version: 6\n'), []);
  });
});

describe('TarEntry.stream', () => {
  it('streams a body in chunks; what the consumer leaves is skipped, and the next entry reads intact', async () => {
    const big = Buffer.alloc(1_000_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    const path = await buildLayer(work, [
      ['big', big],
      ['small', 'after the big one'],
    ]);
    const seen: string[] = [];
    for await (const entry of readTar(createReadStream(path))) {
      if (entry.path === 'big') {
        let read = 0;
        for await (const chunk of entry.stream()) {
          assert.ok(chunk.length <= 64 * 1024);
          assert.ok(chunk.equals(big.subarray(read, read + chunk.length)), `bytes at ${read}`);
          read += chunk.length;
          if (read > 300_000) break;
        }
        assert.throws(() => entry.stream(), /already read/);
      } else {
        seen.push((await entry.read()).toString());
      }
    }
    assert.deepEqual(seen, ['after the big one']);
  });
});

describe('malformed archives and executables', () => {
  /** A fixed linear congruential generator, so a failure is reproducible. */
  function generator(seed: number): (n: number) => number {
    return (n) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
  }
  async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  }
  /** Rejects when `promise` takes longer than `ms`: a reader stuck on a broken stream must not hang. */
  async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  it('damaged jars give what can be read, never an error or a hang', async (t) => {
    if (!(await hasTool('jar', ['--version']))) {
      t.skip(skipOrFail('the jar tool (a JDK) is not installed here') || undefined);
      return;
    }
    const root = join(work, 'damaged');
    await mkdir(join(root, 'META-INF/maven/g/a'), { recursive: true });
    await writeFile(join(root, 'META-INF/maven/g/a/pom.properties'), 'groupId=g\nartifactId=a\nversion=1\n');
    await writeFile(join(root, 'data.txt'), 'some text to deflate\n'.repeat(5000));
    await run('jar', ['cf', join(work, 'damaged.jar'), '-C', root, '.']);
    const jar = await readFile(join(work, 'damaged.jar'));
    assert.deepEqual(await scanJavaArchive(chunked(jar, 4096)), [
      { groupId: 'g', artifactId: 'a', version: '1' },
    ]);
    const random = generator(7);
    for (let round = 0; round < 150; round++) {
      const damaged = Buffer.from(jar);
      for (let flips = 1 + random(12); flips > 0; flips--) damaged[random(damaged.length)] = random(256);
      const found = await within(scanJavaArchive(chunked(damaged, 1 + random(9000))), 5000, `round ${round}`);
      assert.ok(Array.isArray(found));
    }
  });

  it('executables full of false build information headers are read to the end without error', async () => {
    const random = generator(11);
    const header = buildInfoBlob('go1.21.0', 'mod\tx.example/m\tv1.0.0\t\n').subarray(0, 32);
    for (let round = 0; round < 100; round++) {
      const file = Buffer.alloc(100_000);
      file.write('\x7fELF', 0, 'latin1');
      for (let n = 0; n < 20; n++) {
        const at = random(file.length / 16) * 16;
        header.copy(file, at);
        for (let i = 32; i < 40 && at + i < file.length; i++) file[at + i] = random(256);
      }
      const info = await within(scanGoBinary(chunked(file, 1 + random(5000))), 5000, `round ${round}`);
      assert.ok(info === null || typeof info.goVersion === 'string');
    }
  });
});
