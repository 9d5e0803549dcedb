/**
 * Memory bound of `inventory()`: a 1 GiB layer (uncompressed, and gzip-compressed) generated on the fly in a
 * child process, with a 256 MiB executable and a 128 MiB war that the collectors stream, whose peak resident
 * set size must stay far below the layer's size.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CHILD = fileURLToPath(new URL('../helpers/large-layer-child.ts', import.meta.url));
const MiB = 1024 * 1024;
/** Peak RSS allowed: Node with the TypeScript loader alone takes some 75 MiB. */
const MAX_RSS = 200 * MiB;

interface ChildReport {
  packages: string[];
  generated: number;
  seconds: number;
  maxRssKiB: number;
}

async function inventoryInChild(compression: 'none' | 'gzip'): Promise<ChildReport> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', CHILD, compression, '1'], {
    timeout: 120_000,
    maxBuffer: MiB,
  });
  return JSON.parse(stdout) as ChildReport;
}

describe('inventory of a 1 GiB layer', () => {
  for (const compression of ['none', 'gzip'] as const) {
    it(`stays under ${MAX_RSS / MiB} MiB of RSS (${compression})`, async () => {
      const report = await inventoryInChild(compression);
      assert.ok(report.generated >= 1024 * MiB, `${report.generated} bytes generated`);
      assert.deepEqual(report.packages, [
        'Debian:base-files@12.4+deb12u5',
        'Debian:zlib1g@1:1.2.13.dfsg-1',
        // Found only by streaming the 256 MiB executable to its last bytes.
        'Go:example.com/huge@v0.3.1',
        'Go:stdlib@1.22.3',
        // From the 128 MiB war: its nested jar, and its own pom.properties after its large entry.
        'Maven:org.acme:inner@0.9.0',
        'Maven:org.acme:webapp@3.1.0',
        'npm:left-pad@1.3.0',
      ]);
      const rss = report.maxRssKiB * 1024;
      assert.ok(rss < MAX_RSS, `peak RSS ${(rss / MiB).toFixed(1)} MiB in ${report.seconds} s`);
    });
  }
});
