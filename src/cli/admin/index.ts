/**
 * The administration commands: `berth users|robots|teams|namespaces|members|rules|keys|audit|webhooks|jobs|repos|
 * usage|quota|gc|immutable-tags|retention|upstreams|replication|replicate|signatures|vulndb|scan|scanning`.
 * They work on the database directly (as the system), so they need no running server and no credentials, only
 * access to the data directory or database of the configuration (`--config`, `--data`, as `berth serve`).
 */
import type { Command } from 'commander';
import { registerAccountCommands } from './accounts.ts';
import { registerGcCommands } from './gc.ts';
import { registerImmutableTagCommands } from './immutable-tags.ts';
import { registerJobCommands } from './jobs.ts';
import { registerNamespaceCommands } from './namespaces.ts';
import { registerRepositoryCommands } from './repositories.ts';
import { registerReplicationCommands } from './replication.ts';
import { registerRetentionCommands } from './retention.ts';
import { registerSignatureCommands } from './signatures.ts';
import { registerSystemCommands } from './system.ts';
import { registerUsageCommands } from './usage.ts';
import { registerUpstreamCommands } from './upstreams.ts';
import { registerVulnDbCommands } from './vulndb.ts';
import { registerScanningCommands } from './scanning.ts';
import { registerWebhookCommands } from './webhooks.ts';

export function registerAdminCommands(program: Command): void {
  registerAccountCommands(program);
  registerNamespaceCommands(program);
  registerSystemCommands(program);
  registerWebhookCommands(program);
  registerJobCommands(program);
  registerRepositoryCommands(program);
  registerGcCommands(program);
  registerImmutableTagCommands(program);
  registerRetentionCommands(program);
  registerUsageCommands(program);
  registerUpstreamCommands(program);
  registerReplicationCommands(program);
  registerSignatureCommands(program);
  registerVulnDbCommands(program);
  registerScanningCommands(program);
}
