/** Byte counts for people: IEC units (KiB, MiB, ...), one decimal, none when it is zero (`9.8 GiB`, `10 GiB`). */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  // Promote while the rounded value would read 1024 or more of the current unit.
  while (unit < UNITS.length - 1 && Math.round(Math.abs(value) * 10) / 10 >= 1024) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 ? String(Math.round(value)) : (Math.round(value * 10) / 10).toFixed(1);
  return `${text.endsWith('.0') ? text.slice(0, -2) : text} ${UNITS[unit]}`;
}
