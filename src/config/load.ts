/**
 * Loads the configuration: defaults, then the YAML file (if any), then `BERTH_*` environment variables, then
 * command-line flags. Any problem throws a ConfigError whose message names the offending key; an unknown key or
 * `BERTH_*` variable is a problem too (a mistyped `BERTH_AUTH_MODE` must not leave the registry open), with the
 * closest known name as a hint.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { type ConfigLeaf, configLeaves } from './leaves.ts';
import { type Config, configSchema } from './schema.ts';
import { didYouMean } from './suggest.ts';

export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * `BERTH_*` variables that are not configuration keys yet legitimate: the configuration file and the first
 * administrator's password (read by the commands), and the knobs of the test and benchmark harness (which starts
 * Berth processes with its own environment). Any other `BERTH_*` variable that names no key stops the process.
 */
export const NON_CONFIG_VARIABLES: readonly string[] = [
  'BERTH_CONFIG',
  'BERTH_ADMIN_PASSWORD',
  'BERTH_TEST_POSTGRES_URL',
  'BERTH_E2E_TARGET',
  'BERTH_E2E_STORAGE_DRIVER',
  'BERTH_FUZZ_SEED',
  'BERTH_CRASH_SEED',
  'BERTH_TEST_CACHE',
  'BERTH_DEBIAN_MIRROR',
  'BERTH_CI_NODE_CACHE',
];

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
  const leaves = configLeaves();
  checkEnvironmentNames(env, leaves);
  for (const leaf of leaves) {
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
        const known = keyPaths(leaves);
        return issue.keys
          .map((k) => (base ? `${base}.${k}` : k))
          .map((key) => `unknown config key ${key}${didYouMean(key, known)}`)
          .join('; ');
      }
      return `config key ${base || '(root)'}: ${issue.message}`;
    });
    throw new ConfigError(problems.join('; '));
  }
  const config = result.data;
  config.data = path.resolve(config.data);
  return config;
}

/** Throws a ConfigError for every `BERTH_*` variable that is neither a key's variable nor a known other one. */
function checkEnvironmentNames(env: NodeJS.ProcessEnv, leaves: readonly ConfigLeaf[]): void {
  const known = [...leaves.map((leaf) => leaf.env), ...NON_CONFIG_VARIABLES];
  const unknown = Object.keys(env).filter((name) => name.startsWith('BERTH_') && !known.includes(name));
  if (unknown.length > 0) {
    throw new ConfigError(
      unknown.map((name) => `unknown environment variable ${name}${didYouMean(name, known)}`).join('; '),
    );
  }
}

/** Every dotted key path: the leaves and the sections above them (`storage`, `storage.s3`, ...). */
function keyPaths(leaves: readonly ConfigLeaf[]): Set<string> {
  const paths = new Set<string>();
  for (const leaf of leaves) {
    const parts = leaf.path.split('.');
    for (let i = 1; i <= parts.length; i++) paths.add(parts.slice(0, i).join('.'));
  }
  return paths;
}

/** Environment values are strings; turn them into what the key's type expects. */
function fromEnv(value: string, type: string): unknown {
  if (type === 'array') {
    // Lists of objects (`proxy.upstreams`) are JSON; lists of strings are comma-separated.
    if (value.trimStart().startsWith('[')) {
      try {
        return JSON.parse(value) as unknown;
      } catch {
        return value; // left for the schema to reject, naming the key
      }
    }
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
