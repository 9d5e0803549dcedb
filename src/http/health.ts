/**
 * Health endpoints for load balancers and orchestrators: `GET /healthz` (liveness: the process answers) and
 * `GET /readyz` (readiness: every check given passes within a timeout: storage and metadata database answer, and,
 * with filesystem storage, the disk has the free space new uploads need). Both are open (no credentials) and say
 * nothing beyond ok/failed per check.
 */
import type { FastifyInstance } from 'fastify';

export interface ReadinessCheck {
  readonly name: string;
  readonly check: () => Promise<void>;
}

const TIMEOUT_MS = 5000;

export function registerHealth(app: FastifyInstance, checks: readonly ReadinessCheck[]): void {
  app.get('/healthz', async (_request, reply) =>
    reply.code(200).type('application/json').send('{"status":"ok"}'),
  );
  app.get('/readyz', async (request, reply) => {
    const results: Record<string, string> = {};
    let ready = true;
    await Promise.all(
      checks.map(async ({ name, check }) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            check(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
            }),
          ]);
          results[name] = 'ok';
        } catch (err) {
          ready = false;
          results[name] = 'failed';
          request.log.warn({ err, check: name }, 'readiness check failed');
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return reply
      .code(ready ? 200 : 503)
      .header('Cache-Control', 'no-store')
      .type('application/json')
      .send(JSON.stringify({ status: ready ? 'ready' : 'unavailable', checks: results }));
  });
}
