/** Parsing of request headers and query parameters the distribution API defines; bad values throw spec errors. */
import { BlobUploadInvalidError, PaginationNumberInvalidError, RangeInvalidError } from '../oci/errors.ts';
import type { ByteRange } from '../storage/driver.ts';

/**
 * Parses a blob GET `Range` header against a blob of `size` bytes, as HTTP (RFC 9110) and Go's ServeContent do:
 * absent -> null (whole blob); `bytes=a-b`, `bytes=a-`, `bytes=-n` -> the range, clipped to the blob; several
 * ranges -> null (a server may ignore Range); malformed or unsatisfiable -> 416 with `Content-Range: bytes *\/size`.
 */
export function parseRangeHeader(header: string | undefined, size: number): ByteRange | null {
  if (header === undefined) return null;
  const unsatisfiable = (): never => {
    throw new RangeInvalidError('requested range not satisfiable', {
      headers: { 'Content-Range': `bytes */${size}` },
    });
  };
  const m = /^bytes=\s*(.*)$/i.exec(header.trim());
  if (!m) return unsatisfiable();
  const specs = (m[1] as string)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (specs.length !== 1) return specs.length === 0 ? unsatisfiable() : null;
  const r = /^(\d*)-(\d*)$/.exec(specs[0] as string);
  if (!r || (r[1] === '' && r[2] === '')) return unsatisfiable();
  const [, a, b] = r as unknown as [string, string, string];
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || (b !== '' && Number(b) < start))
    return unsatisfiable();
  return { start, end };
}

/**
 * Parses a PATCH `Content-Range` (`<start>-<end>`, inclusive; a `bytes ` or `bytes=` prefix and a `/total`
 * suffix are tolerated). Absent -> undefined. Malformed -> 416 (the chunk cannot be placed).
 */
export function parseContentRange(header: string | undefined): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*(?:bytes[ =])?(\d{1,16})-(\d{1,16})(?:\/(?:\d{1,16}|\*))?\s*$/i.exec(header);
  if (!m) throw new RangeInvalidError(`malformed Content-Range ${JSON.stringify(header.slice(0, 100))}`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new RangeInvalidError(`Content-Range end ${end} is before its start ${start}`);
  return { start, end };
}

/** Content-Length as a number (Node has already rejected malformed values), or undefined. */
export function contentLength(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const n = Number(header);
  if (!Number.isSafeInteger(n) || n < 0) throw new BlobUploadInvalidError('invalid Content-Length');
  return n;
}

/**
 * Parses the pagination `n`: absent -> `fallback`; not a non-negative integer -> 400; above `max` (however many
 * digits it has: some clients ask for "everything" with a huge n) -> `max`.
 */
export function parsePageSize(value: unknown, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  if (typeof value !== 'string' || !/^\d{1,1000}$/.test(value)) {
    throw new PaginationNumberInvalidError('n must be a non-negative integer', {
      detail: { n: String(value).slice(0, 50) },
    });
  }
  return Math.min(Number(value), max);
}

/** A single-valued query parameter (the first when repeated), or undefined. */
export function queryParam(query: unknown, key: string): string | undefined {
  const v = (query as Record<string, unknown> | undefined)?.[key];
  if (Array.isArray(v)) return typeof v[0] === 'string' ? v[0] : undefined;
  return typeof v === 'string' ? v : undefined;
}

/** Every value of a repeated query parameter. */
export function queryParams(query: unknown, key: string): string[] {
  const v = (query as Record<string, unknown> | undefined)?.[key];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return typeof v === 'string' ? [v] : [];
}
