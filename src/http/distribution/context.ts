import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AccessControl, Caller } from '../auth/access-control.ts';
import type { Registry } from '../../registry/registry.ts';
import type { RouteParams } from '../routes.ts';
import type { UrlBuilder } from '../urls.ts';

/** What every distribution handler gets. `name` is already validated when the route has one. */
export interface RouteContext {
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly params: RouteParams & { name: string };
  readonly registry: Registry;
  readonly urls: UrlBuilder;
  readonly limits: { readonly catalogPageSize: number; readonly tagsPageSize: number };
  /** Who is calling (already authorized for what the route needs). */
  readonly caller: Caller;
  readonly access: AccessControl;
}

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'PATCH' | 'POST' | 'DELETE';
export type Handler = (ctx: RouteContext) => Promise<void>;
export type MethodTable = Partial<Record<HttpMethod, Handler>>;
