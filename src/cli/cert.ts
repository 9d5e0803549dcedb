/**
 * `berth cert`: development certificates for HTTPS (and mutual TLS) in one command; see
 * `tls/certificates.ts` for what is written. Prints the files and the configuration lines to use them.
 */
import { type Command, InvalidArgumentError } from 'commander';

export interface CertFlags {
  readonly out: string;
  readonly host?: string[];
  readonly days: number;
  readonly client?: string[];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...value
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== ''),
  ];
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive whole number of days');
  }
  return n;
}

function yamlString(s: string): string {
  return /^[\w./@:+-]+$/.test(s) ? s : JSON.stringify(s);
}

/** Generates the certificates and returns what to print. */
export async function cert(flags: CertFlags): Promise<string> {
  // Loaded only here: `berth serve` never needs the X.509 generator (nor its Reflect polyfill).
  const { writeCertificates } = await import('../tls/certificates.ts');
  const r = await writeCertificates({
    outDir: flags.out,
    hosts: flags.host ?? [],
    days: flags.days,
    clients: flags.client ?? [],
  });
  const width = Math.max(...r.files.map((f) => f.path.length));
  const lines = [
    r.caCreated ? `Created a new CA in ${r.outDir}.` : `Reused the CA in ${r.caCert}.`,
    'Wrote:',
    ...r.files.map((f) => `  ${f.path.padEnd(width)}  ${f.description}`),
    '',
    'Serve HTTPS with these lines in the configuration file:',
    '  tls:',
    `    certificate: ${yamlString(r.serverCert)}`,
    `    key: ${yamlString(r.serverKey)}`,
    '    # client certificates (mutual TLS), optional:',
    `    # clientCA: ${yamlString(r.caCert)}`,
    '    # clientAuth: optional   # or require',
    `or in the environment: BERTH_TLS_CERTIFICATE=${r.serverCert} BERTH_TLS_KEY=${r.serverKey}`,
    '',
    `Clients must trust ${r.caCert}, e.g. as /etc/containers/certs.d/HOST:PORT/ca.crt (podman, skopeo,`,
    'buildah), /etc/docker/certs.d/HOST:PORT/ca.crt (docker) or `curl --cacert`. Only ca.crt goes there: those',
    'tools read every *.key in the directory as a client key (client certificates go there as NAME.cert + NAME.key).',
    `Run \`berth cert --out ${r.outDir}\` again to re-issue certificates from the same CA; a running server`,
    'picks up new server.crt/server.key files without restarting (tls.reloadInterval).',
  ];
  return `${lines.join('\n')}\n`;
}

/** Adds `berth cert` to the program. */
export function registerCertCommand(program: Command): void {
  program
    .command('cert')
    .description('generate a development CA and certificates for HTTPS and mutual TLS')
    .option('-o, --out <dir>', 'output directory; an existing ca.crt + ca.key there is reused', './certs')
    .option(
      '--host <name>',
      'host name or IP address of the server certificate, repeatable (default: localhost, 127.0.0.1, ::1)',
      collect,
    )
    .option('--days <n>', 'validity of the server and client certificates in days', positiveInt, 365)
    .option(
      '--client <name>',
      'also write a client certificate NAME.crt/NAME.key with CN=NAME, repeatable',
      collect,
    )
    .action(async (flags: CertFlags) => {
      let text: string;
      try {
        text = await cert(flags);
      } catch (e) {
        if ((e as Error).name !== 'CertificateError') throw e;
        // A bad --host, --client or CA in --out: say what, without the usage text.
        process.stderr.write(`berth cert: ${(e as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      process.stdout.write(text);
    });
}
