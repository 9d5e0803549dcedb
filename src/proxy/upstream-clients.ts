/**
 * One remote-registry client per upstream and its connection settings: a client keeps its connections and
 * tokens, so requests to an upstream reuse them; a change of the upstream's URLs, credentials or TLS settings
 * gives a new client.
 */
import type { Logger } from '../logger.ts';
import { createRegistryClient } from '../remote/http-registry-client.ts';
import type { RegistryClient } from '../remote/registry-client.ts';
import type { Upstream } from './upstream.ts';

export class UpstreamClients {
  readonly #clients = new Map<string, { readonly key: string; readonly client: RegistryClient }>();

  constructor(private readonly logger?: Logger) {}

  /** The client of `upstream` as it is configured now. */
  get(upstream: Upstream): RegistryClient {
    const { urls, caBundle, insecure, timeout } = upstream.settings;
    const key = JSON.stringify([urls, upstream.credentials, caBundle, insecure, timeout]);
    const id = `${upstream.source}:${upstream.name}`;
    const known = this.#clients.get(id);
    if (known?.key === key) return known.client;
    // The replaced client's idle connections go now; a request still using it finishes.
    if (known) (known.client as { close?: () => void }).close?.();
    const client = createRegistryClient(
      { urls, credentials: upstream.credentials, caBundle, insecure, timeoutMs: timeout },
      this.logger ? { logger: this.logger } : {},
    );
    this.#clients.set(id, { key, client });
    return client;
  }
}
