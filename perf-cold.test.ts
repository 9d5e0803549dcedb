import { createTestRegistry } from './test/helpers/app.ts';
import { startDistribution } from './test/helpers/distribution.ts';
import { get, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, createHash } from 'node:crypto';

const up = await startDistribution();
const cache = await createTestRegistry({ 'proxy.upstreams': [{ name: 'up', namespace: 'c', urls: [up.url] }] });
await cache.app.listen({ host: '127.0.0.1', port: 0 });
const cUrl = `http://127.0.0.1:${(cache.app.server.address() as AddressInfo).port}`;
const size = Number(process.env.MB ?? 256) * 1024 * 1024;
const N = Number(process.env.N ?? 4);
async function push(blob: Buffer): Promise<string> {
  const digest = 'sha256:' + createHash('sha256').update(blob).digest('hex');
  const loc: string = await new Promise((resolve, reject) => { const r = request(`${up.url}/v2/t/a/blobs/uploads/`, { method: 'POST' }, (res) => { res.resume(); resolve(res.headers.location as string); }); r.on('error', reject); r.end(); });
  const u = new URL(loc, up.url); u.searchParams.set('digest', digest);
  await new Promise<void>((resolve, reject) => { const r = request(u, { method: 'PUT', headers: { 'content-length': blob.length } }, (res) => { res.resume(); res.on('end', () => resolve()); }); r.on('error', reject); r.end(blob); });
  return digest;
}
const sets: string[][] = [];
for (let k = 0; k < 2; k++) { const d: string[] = []; for (let i = 0; i < N; i++) d.push(await push(randomBytes(size))); sets.push(d); }
function fetchTime(url: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => get(url, (res) => { let n = 0; res.on('data', (c) => (n += c.length)); res.on('end', () => { if (n !== size) reject(new Error('short ' + n)); resolve(performance.now() - t); }); res.on('error', reject); }));
}
let t = performance.now();
await Promise.all(sets[0]!.map((d) => fetchTime(`${up.url}/v2/t/a/blobs/${d}`)));
console.log('direct', (performance.now() - t).toFixed(0), 'ms');
t = performance.now();
await Promise.all(sets[1]!.map((d) => fetchTime(`${cUrl}/v2/c/t/a/blobs/${d}`)));
console.log('cold', (performance.now() - t).toFixed(0), 'ms');
t = performance.now();
await Promise.all(sets[1]!.map((d) => fetchTime(`${cUrl}/v2/c/t/a/blobs/${d}`)));
console.log('warm', (performance.now() - t).toFixed(0), 'ms');
await cache.dispose(); await up.stop();
