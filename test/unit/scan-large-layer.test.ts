/**
 * Memory bound of `inventory()`: a 1 GiB layer (uncompressed, and gzip-compressed), with a 256 MiB executable and
 * a 128 MiB war that the collectors stream, generated on the fly by one child process and piped into another
 * that scans it (see `large-layer-child.ts`), whose peak resident set size must stay far below the layer's size.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
const CHILD = fileURLToPath(new URL('../helpers/large-layer-child.ts', import.meta.url));
const MiB = 1024 * 1024;
/** Peak RSS allowed: Node with the TypeScript loader alone takes some 75 MiB. */
const MAX_RSS = 200 * MiB;

interface ChildReport {
  packages: string[];
  /** Bytes of tar the generator produced. */
  generated: number;
  /** Bytes of blob the scanner read (compressed, for gzip). */
  read: number;
  seconds: number;
  maxRssKiB: number;
}

/** Collects a stream's text. */
async function text(stream: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += String(chunk);
  return out;
}

/** Generates the layer in one child, scans it in another reading the first's stdout; both reports. */
async function inventoryInChild(compression: 'none' | 'gzip'): Promise<ChildReport> {
  const options = { timeout: 120_000 };
  const generator = spawn(process.execPath, ['--import', 'tsx', CHILD, 'generate', compression, '1'], {
    ...options,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const scanner = spawn(process.execPath, ['--import', 'tsx', CHILD, 'scan'], {
    ...options,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  generator.stdout.pipe(scanner.stdin);
  const exited = (child: ReturnType<typeof spawn>, name: string): Promise<void> =>
    new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`${name} exited with ${code}`)),
      );
    });
  const [generated, scanned] = await Promise.all([
    text(generator.stderr),
    text(scanner.stdout),
    exited(generator, 'generator'),
    exited(scanner, 'scanner'),
  ]);
  return {
    ...(JSON.parse(scanned) as Omit<ChildReport, 'generated'>),
    ...(JSON.parse(generated) as { generated: number }),
  };
}

describe('inventory of a 1 GiB layer', () => {
  for (const compression of ['none', 'gzip'] as const) {
    it(`stays under ${MAX_RSS / MiB} MiB of RSS (${compression})`, async (t) => {
      const report = await inventoryInChild(compression);
      t.diagnostic(`peak RSS ${(report.maxRssKiB / 1024).toFixed(1)} MiB, ${report.seconds} s`);
      assert.ok(report.generated >= 1024 * MiB, `${report.generated} bytes generated`);
      if (compression === 'none')
        assert.equal(report.read, report.generated, 'the scanner read the whole layer');
      else
        assert.ok(report.read > 0 && report.read < report.generated, `${report.read} compressed bytes read`);
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
