/** Admin API: token signing keys and the audit log. */
import type { FastifyInstance } from 'fastify';
import type { AdminService } from '../../admin/admin-service.ts';
import { parseTime } from '../../admin/validation.ts';
import { actorOf, boolQuery, pageQuery, parseLimit, sendJson, stringQuery } from './request.ts';

export function registerSystemRoutes(api: FastifyInstance, admin: AdminService): void {
  api.get('/keys', async (request, reply) =>
    sendJson(reply, 200, await admin.listKeys(actorOf(request), pageQuery(request))),
  );
  api.post('/keys/rotate', async (request, reply) =>
    sendJson(reply, 200, await admin.rotateKey(actorOf(request))),
  );
  api.post('/keys/prune', async (request, reply) =>
    sendJson(reply, 200, { pruned: await admin.pruneKeys(actorOf(request)) }),
  );

  api.get('/audit', async (request, reply) => {
    const actor = actorOf(request);
    const since = stringQuery(request, 'since');
    const until = stringQuery(request, 'until');
    const limit = stringQuery(request, 'limit');
    const result = await admin.queryAudit(actor, {
      actor: stringQuery(request, 'actor'),
      action: stringQuery(request, 'action'),
      target: stringQuery(request, 'target'),
      success: boolQuery(request, 'success'),
      since: since === undefined ? undefined : parseTime(since, 'since'),
      until: until === undefined ? undefined : parseTime(until, 'until'),
      before: stringQuery(request, 'before'),
      limit: limit === undefined ? undefined : parseLimit(limit),
    });
    return sendJson(reply, 200, result);
  });
}
