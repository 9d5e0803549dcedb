/**
 * The scanning benchmark's Debian image (`bench/lib/scan-image.ts`): the dpkg status is trimmed to installed
 * packages (the ones with OSV fixtures first), and the layer written is one `inventory()` reads back to exactly
 * those packages, on the os-release given.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { trimStatus, writeDebianImage } from '../../bench/lib/scan-image.ts';
import { inventory } from '../../src/scanning/inventory/inventory.ts';

// Paragraphs in the format of /var/lib/dpkg/status on Debian 12 (fields abridged).
const STATUS = [
  'Package: adduser\nStatus: install ok installed\nPriority: important\nArchitecture: all\nVersion: 3.134',
  'Package: old-lib\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0-1',
  'Package: bash\nStatus: install ok installed\nEssential: yes\nArchitecture: amd64\nVersion: 5.2.15-2+b2',
  'Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1',
  'Package: coreutils\nStatus: install ok installed\nEssential: yes\nArchitecture: amd64\nVersion: 9.1-1',
  'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4',
].join('\n\n');

const OS_RELEASE =
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n';

describe('trimStatus', () => {
  it('keeps installed packages only, libc6 and zlib1g first, at most the count asked', () => {
    assert.deepEqual(trimStatus(STATUS, 10).names, ['zlib1g', 'libc6', 'adduser', 'bash', 'coreutils']);
    assert.deepEqual(trimStatus(STATUS, 3).names, ['zlib1g', 'libc6', 'adduser']);
    const { text } = trimStatus(STATUS, 3);
    assert.match(text, /^Package: zlib1g\n/);
    assert.doesNotMatch(text, /old-lib|bash/);
  });

  it('finds nothing in text that is not a status database', () => {
    assert.deepEqual(trimStatus('', 100).names, []);
    assert.deepEqual(trimStatus('\n\n\nnot: a\n\nstatus file', 100).names, []);
  });
});

describe('writeDebianImage', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-scan-image-'));
    await writeFile(join(dir, 'status'), STATUS);
    await writeFile(join(dir, 'os-release'), OS_RELEASE);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('writes a gzip layer whose inventory is the trimmed packages', async () => {
    const blob = join(dir, 'layer.tar.gz');
    const image = await writeDebianImage(blob, {
      statusFile: join(dir, 'status'),
      osReleaseFile: join(dir, 'os-release'),
      packages: 4,
      fillerBytes: 1024 * 1024,
      fillerFiles: 40,
    });
    assert.deepEqual(image.packages, ['zlib1g', 'libc6', 'adduser', 'bash']);
    assert.equal(image.entries, 42);
    assert.ok(image.tarBytes > (1024 * 1024) / 2, `${image.tarBytes} tar bytes`);
    assert.ok(image.blobBytes > 0 && image.blobBytes < image.tarBytes);
    const inv = await inventory([createReadStream(blob)]);
    assert.equal(inv.os?.id, 'debian');
    assert.equal(inv.os?.versionId, '12');
    assert.deepEqual(
      inv.packages.map((p) => `${p.ecosystem}:${p.name}@${p.version}`),
      [
        'Debian:adduser@3.134',
        'Debian:bash@5.2.15-2+b2',
        'Debian:libc6@2.36-9+deb12u4',
        'Debian:zlib1g@1:1.2.13.dfsg-1',
      ],
    );
  });

  it('fails on a status database without installed packages', async () => {
    await writeFile(join(dir, 'empty-status'), '');
    await assert.rejects(
      writeDebianImage(join(dir, 'none.tar.gz'), {
        statusFile: join(dir, 'empty-status'),
        osReleaseFile: join(dir, 'os-release'),
      }),
      /no installed package/,
    );
  });
});
