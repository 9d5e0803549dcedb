/** Small helpers shared by the workloads. */
import { GiB, MiB } from './stats.ts';

/** `1 GiB`, `256 MiB`, `8 MiB`, `512 KiB`. */
export function sizeLabel(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}

/** `10,000` */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}
