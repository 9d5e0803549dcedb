/**
 * True for errors that mean a write found no room: the filesystem is full or a quota is reached (ENOSPC, EDQUOT,
 * from the filesystem storage driver or any local write), SQLite cannot grow its files (SQLITE_FULL), or
 * PostgreSQL's disk is full (SQLSTATE 53100). Causes are followed, for errors that wrap another.
 */
export function isStorageFull(error: unknown): boolean {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL' || code === '53100') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
