/**
 * Loads the configuration: defaults, then the YAML file (if any), then `BERTH_*` environment variables, then
 * command-line flags. Any problem throws a ConfigError whose message names the offending key.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { configLeaves } from './leaves.ts';
import { type Config, configSchema } from './schema.ts';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** A YAML file to read. */
  readonly file?: string | undefined;
  /** The environment to take `BERTH_*` overrides from. */
  readonly env?: NodeJS.ProcessEnv;
  /** Overrides from the command line, as dotted paths (`listen`, `data`). */
  readonly overrides?: Record<string, unknown>;
}

/** Builds the effective configuration, or throws ConfigError naming the bad key. */
export function loadConfig(options: LoadOptions = {}): Config {
  let raw: unknown = {};
  if (options.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(e as Error).message}`);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (e) {
      const where = e instanceof YAMLParseError && e.linePos ? ` at line ${e.linePos[0].line}` : '';
      throw new ConfigError(`config file ${options.file} is not valid YAML${where}: ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ConfigError(`config file ${options.file} must be a YAML mapping`);
    }
  }
  const input = raw as Record<string, unknown>;
  const env = options.env ?? process.env;
  for (const leaf of configLeaves()) {
    const value = env[leaf.env];
    if (value === undefined) continue;
    setPath(input, leaf.path, fromEnv(value, leaf.type));
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value !== undefined) setPath(input, key, value);
  }
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const base = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') {
        const keys = issue.keys.map((k) => (base ? `${base}.${k}` : k));
        return `unknown config key ${keys.join(', ')}`;
      }
      return `config key ${base || '(root)'}: ${issue.message}`;
    });
    throw new ConfigError(problems.join('; '));
  }
  const config = result.data;
  config.data = path.resolve(config.data);
  return config;
}

/** Environment values are strings; turn them into what the key's type expects. */
function fromEnv(value: string, type: string): unknown {
  if (type === 'array') {
    return value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }
  if (value === '' || value === 'null') return type === 'string' || type === 'enum' ? value || null : null;
  if (type === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(value)) return true;
    if (/^(false|0|no|off)$/i.test(value)) return false;
    return value; // left for the schema to reject, naming the key
  }
  if (type === 'number') return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  if (type === 'union') return /^\d+(\.\d+)?$/.test(value) ? Number(value) : value; // durations
  return value;
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
}
