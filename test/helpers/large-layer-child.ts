/**
 * The two processes of the 1 GiB inventory test, run as scripts:
 * - `node --import tsx large-layer-child.ts generate <none|gzip> <GiB>` writes a tar layer of that many GiB to
 *   stdout, generated on the fly (`large-layer.ts`), never on disk and never whole in memory, optionally
 *   gzip-compressed as it is generated; then prints `{"generated": <tar bytes>}` on stderr.
 * - `node --import tsx large-layer-child.ts scan` runs `inventory()` over the blob it reads on stdin and prints one
 *   JSON line: the packages found, the bytes read, the time taken, the peak RSS.
 *
 * Why two processes: the scanner is measured as it runs in the registry, reading a blob that arrives over a
 * stream from elsewhere (storage, the network). Generating a GiB in the scanner's own process at memory speed
 * leaves the generator's garbage to the garbage collector's pace and measures that instead.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { inventory } from '../../src/scanning/inventory/inventory.ts';
import { largeLayer } from './large-layer.ts';

const [mode = 'scan', compression = 'none', gib = '1'] = process.argv.slice(2);

if (mode === 'generate') {
  const layer = largeLayer(Number(gib) * 1024);
  const stages =
    compression === 'gzip'
      ? [layer.stream, zlib.createGzip({ level: 1 }), process.stdout]
      : [layer.stream, process.stdout];
  await pipeline(stages);
  process.stderr.write(`${JSON.stringify({ generated: layer.generated() })}\n`);
} else {
  const started = Date.now();
  let read = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      read += chunk.length;
      done(null, chunk);
    },
  });
  const result = await inventory([process.stdin.pipe(counter)]);
  process.stdout.write(
    `${JSON.stringify({
      packages: result.packages.map((pkg) => `${pkg.ecosystem}:${pkg.name}@${pkg.version}`),
      read,
      seconds: (Date.now() - started) / 1000,
      maxRssKiB: process.resourceUsage().maxRSS,
    })}\n`,
  );
}
