/** Replication put together from configuration: its store, the secret box of credentials, remote clients. */
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import type { JobRunner } from '../jobs/runner.ts';
import type { Logger } from '../logger.ts';
import type { ReplicationStore } from '../metadata/replication-store.ts';
import type { Registry } from '../registry/registry.ts';
import { createRegistryClient } from '../remote/http-registry-client.ts';
import { SecretBox } from '../remote/secret-box.ts';
import { ReplicationService } from './service.ts';

/** The secret box of `secrets.key`/`secrets.keyFile` (default `<data>/secret.key`, created, with SQLite). */
export function secretBoxFor(config: Config): SecretBox {
  const sqlite = config.metadata.driver === 'sqlite';
  const keyFile = config.secrets.keyFile ?? (sqlite ? path.join(config.data, 'secret.key') : null);
  return new SecretBox({
    key: config.secrets.key,
    keyFile,
    generate: config.secrets.keyFile === null && sqlite,
  });
}

export function createReplication(
  config: Config,
  deps: {
    store: ReplicationStore;
    registry: Registry;
    jobs: JobRunner;
    logger: Logger;
    /** The process's secret box (shared with the pull-through cache); default one for `config`. */
    secrets?: SecretBox;
  },
): ReplicationService {
  return new ReplicationService({
    ...deps,
    secrets: deps.secrets ?? secretBoxFor(config),
    clientFactory: (endpoint) => createRegistryClient(endpoint, { logger: deps.logger }),
    scheduleCheckIntervalMs: config.replication.scheduleCheck,
  });
}
