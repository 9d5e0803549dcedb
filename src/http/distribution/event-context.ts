/** Who and what caused a change, as the domain events record it: the caller and the HTTP request. */
import type { FastifyRequest } from 'fastify';
import type { EventContext } from '../../events/event.ts';
import type { Caller } from '../auth/access-control.ts';

export function eventContextOf(request: FastifyRequest, caller: Caller): EventContext {
  const { principal } = caller;
  return {
    actor: { name: principal.name, kind: principal.kind },
    request: {
      id: String(request.id),
      addr: request.ip,
      host: request.headers.host ?? '',
      method: request.method,
      userAgent: request.headers['user-agent'] ?? '',
    },
  };
}
