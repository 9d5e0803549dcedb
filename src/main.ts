/** Process entry of the `berth` command. */
import { Command } from 'commander';
import { registerAdminCommands } from './cli/admin/index.ts';
import { registerCertCommand } from './cli/cert.ts';
import { ConfigError } from './config/load.ts';
import { VERSION } from './version.ts';

const program = new Command()
  .name('berth')
  .description('Berth, a self-hosted OCI container registry')
  .version(VERSION)
  .showHelpAfterError();

program
  .command('serve')
  .description('run the registry')
  .option('-c, --config <file>', 'YAML configuration file (also BERTH_CONFIG)')
  .option('-l, --listen <addr>', 'listen address HOST:PORT (default 0.0.0.0:5000)')
  .option('-d, --data <dir>', 'data directory of the embedded default (default ./data)')
  .action(async (flags: { config?: string; listen?: string; data?: string }) => {
    // Loaded on demand, so administration commands do not load the HTTP server.
    const { serve } = await import('./cli/serve.ts');
    await serve(flags);
  });

registerCertCommand(program);
registerAdminCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`berth: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`berth: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
