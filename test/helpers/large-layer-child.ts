/**
 * Run as a script (`node --import tsx large-layer-child.ts <none|gzip> <GiB>`): generates a tar layer of that
 * many GiB on the fly (`large-layer.ts`), never on disk and never whole in memory, optionally gzip-compressed as
 * it is generated, runs `inventory()` over it and prints one JSON line: the packages found, the bytes generated,
 * the peak RSS.
 */
import * as zlib from 'node:zlib';
import { inventory } from '../../src/scanning/inventory/inventory.ts';
import { largeLayer } from './large-layer.ts';

const [compression = 'none', gib = '1'] = process.argv.slice(2);

const started = Date.now();
const layer = largeLayer(Number(gib) * 1024);
const blob = compression === 'gzip' ? layer.stream.pipe(zlib.createGzip({ level: 1 })) : layer.stream;
const result = await inventory([blob]);
process.stdout.write(
  `${JSON.stringify({
    packages: result.packages.map((pkg) => `${pkg.ecosystem}:${pkg.name}@${pkg.version}`),
    generated: layer.generated(),
    seconds: (Date.now() - started) / 1000,
    maxRssKiB: process.resourceUsage().maxRSS,
  })}\n`,
);
