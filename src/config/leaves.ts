/**
 * The configuration keys, read off the schema: their dotted path, environment variable, type, default and
 * description. Used by the loader (environment overrides) and to check `docs/configuration.md`.
 */
import type { z } from 'zod';
import { configSchema } from './schema.ts';

export interface ConfigLeaf {
  /** Dotted path, e.g. `storage.filesystem.root`. */
  readonly path: string;
  /** The environment variable that overrides it, e.g. `BERTH_STORAGE_FILESYSTEM_ROOT`. */
  readonly env: string;
  /** The base zod type name (`string`, `number`, `boolean`, `enum`, `union` for durations...). */
  readonly type: string;
  readonly description: string;
}

type AnySchema = z.ZodType & {
  def: { type: string; innerType?: AnySchema; shape?: Record<string, AnySchema> };
};

function unwrap(schema: AnySchema): AnySchema {
  let s = schema;
  while (
    s.def.innerType !== undefined &&
    ['default', 'prefault', 'nullable', 'optional', 'pipe'].includes(s.def.type)
  ) {
    s = s.def.innerType;
  }
  if (s.def.type === 'pipe') {
    const inner = (s.def as unknown as { in: AnySchema }).in;
    return unwrap(inner);
  }
  return s;
}

/** `purgeAfter` -> `PURGE_AFTER` */
function upperSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

function walk(schema: AnySchema, prefix: string[], out: ConfigLeaf[]): void {
  const base = unwrap(schema);
  if (base.def.type === 'object') {
    const shape = (base as unknown as { shape: Record<string, AnySchema> }).shape;
    for (const [key, child] of Object.entries(shape)) walk(child, [...prefix, key], out);
    return;
  }
  out.push({
    path: prefix.join('.'),
    env: `BERTH_${prefix.map(upperSnake).join('_')}`,
    type: base.def.type,
    description: schema.description ?? base.description ?? '',
  });
}

/** Every configuration leaf, in schema order. */
export function configLeaves(): ConfigLeaf[] {
  const out: ConfigLeaf[] = [];
  walk(configSchema as unknown as AnySchema, [], out);
  return out;
}
