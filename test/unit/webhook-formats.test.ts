/** Webhook payloads: Distribution's envelope with its exact field names and omit-empty rules, and CloudEvents. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DomainEvent } from '../../src/events/event.ts';
import type { Digest } from '../../src/oci/digest.ts';
import {
  CLOUDEVENTS_MEDIA_TYPE,
  DISTRIBUTION_EVENTS_MEDIA_TYPE,
  renderCloudEvent,
  renderDistribution,
  renderEvent,
  type RenderOptions,
} from '../../src/webhooks/formats.ts';
import { createTestEvent } from '../../src/webhooks/subscriber.ts';

const DIGEST = `sha256:${'a'.repeat(64)}` as Digest;
const PREVIOUS = `sha256:${'b'.repeat(64)}` as Digest;
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const options: RenderOptions = {
  baseUrl: 'https://registry.example.com/',
  source: { addr: 'node-1:5000', instanceID: 'f0f0f0f0-0000-4000-8000-000000000000' },
};
const request = {
  id: 'req-1',
  addr: '192.0.2.7',
  host: 'registry.example.com',
  method: 'PUT',
  userAgent: 'docker/27',
};

function event(overrides: Partial<DomainEvent>): DomainEvent {
  return {
    id: '6f1e3f8a-1111-4222-8333-444455556666',
    type: 'manifest.pushed',
    occurredAt: '2026-12-07T05:00:00.000Z',
    target: {
      repository: 'team/app',
      digest: DIGEST,
      mediaType: MANIFEST_TYPE,
      size: 1234,
      tag: 'v1',
      tags: ['v1'],
    },
    actor: { name: 'alice', kind: 'user' },
    request,
    ...overrides,
  };
}

function distribution(
  e: DomainEvent | ReturnType<typeof createTestEvent>,
  o: RenderOptions = options,
): unknown {
  const rendered = renderDistribution(e, o);
  assert.ok(rendered);
  assert.equal(rendered.contentType, DISTRIBUTION_EVENTS_MEDIA_TYPE);
  const envelope = JSON.parse(rendered.body) as { events: unknown[] };
  assert.deepEqual(Object.keys(envelope), ['events']);
  assert.equal(envelope.events.length, 1);
  return envelope.events[0];
}

describe('Distribution notification envelope', () => {
  it('renders a manifest push with exactly Distribution field names, in its order', () => {
    const rendered = renderDistribution(event({}), options);
    assert.ok(rendered);
    const record = distribution(event({}));
    assert.deepEqual(record, {
      id: '6f1e3f8a-1111-4222-8333-444455556666',
      timestamp: '2026-12-07T05:00:00.000Z',
      action: 'push',
      target: {
        mediaType: MANIFEST_TYPE,
        size: 1234,
        digest: DIGEST,
        length: 1234,
        repository: 'team/app',
        url: `https://registry.example.com/v2/team/app/manifests/${DIGEST}`,
        tag: 'v1',
      },
      request: {
        id: 'req-1',
        addr: '192.0.2.7',
        host: 'registry.example.com',
        method: 'PUT',
        useragent: 'docker/27',
      },
      actor: { name: 'alice' },
      source: { addr: 'node-1:5000', instanceID: 'f0f0f0f0-0000-4000-8000-000000000000' },
    });
    // Go's struct order, as Distribution marshals it.
    assert.deepEqual(Object.keys(record as object), [
      'id',
      'timestamp',
      'action',
      'target',
      'request',
      'actor',
      'source',
    ]);
    assert.deepEqual(Object.keys((record as { target: object }).target), [
      'mediaType',
      'size',
      'digest',
      'length',
      'repository',
      'url',
      'tag',
    ]);
  });

  it('omits empty fields as omitempty does, but keeps the objects and the request fields without omitempty', () => {
    const record = distribution(
      event({
        type: 'manifest.deleted',
        target: { repository: 'team/app', digest: DIGEST },
        actor: null,
        request: null,
      }),
      { ...options, source: { addr: '', instanceID: 'i' } },
    );
    assert.deepEqual(record, {
      id: '6f1e3f8a-1111-4222-8333-444455556666',
      timestamp: '2026-12-07T05:00:00.000Z',
      action: 'delete',
      target: { digest: DIGEST, repository: 'team/app' },
      request: { id: '', method: '', useragent: '' },
      actor: {},
      source: { instanceID: 'i' },
    });
  });

  it('maps every event type to its Distribution action, and leaves out repository.created', () => {
    const action = (e: DomainEvent): unknown => (distribution(e) as { action: string }).action;
    assert.equal(action(event({ type: 'manifest.pulled' })), 'pull');
    assert.equal(
      action(
        event({
          type: 'tag.moved',
          target: { repository: 'team/app', tag: 'v1', digest: DIGEST, previousDigest: PREVIOUS },
        }),
      ),
      'push',
    );
    assert.equal(
      renderDistribution(event({ type: 'repository.created', target: { repository: 'team/app' } }), options),
      null,
    );
    assert.equal(
      renderEvent(
        'distribution',
        event({ type: 'repository.created', target: { repository: 'team/app' } }),
        options,
      ),
      null,
    );

    const tagDelete = distribution(
      event({ type: 'tag.deleted', target: { repository: 'team/app', tag: 'v1', digest: DIGEST } }),
    );
    assert.deepEqual((tagDelete as { target: unknown }).target, { repository: 'team/app', tag: 'v1' });
    const repoDelete = distribution(
      event({ type: 'repository.deleted', target: { repository: 'team/app' } }),
    );
    assert.deepEqual((repoDelete as { action: string; target: unknown }).target, { repository: 'team/app' });

    const mount = distribution(
      event({
        type: 'blob.mounted',
        target: {
          repository: 'team/app',
          digest: DIGEST,
          size: 9,
          mediaType: 'application/octet-stream',
          from: 'team/base',
        },
      }),
    ) as { action: string; target: unknown };
    assert.equal(mount.action, 'mount');
    assert.deepEqual(mount.target, {
      mediaType: 'application/octet-stream',
      size: 9,
      digest: DIGEST,
      length: 9,
      repository: 'team/app',
      fromRepository: 'team/base',
      url: `https://registry.example.com/v2/team/app/blobs/${DIGEST}`,
    });
    const blobPull = distribution(
      event({ type: 'blob.pulled', target: { repository: 'team/app', digest: DIGEST, size: 9 } }),
    ) as {
      action: string;
      target: { url: string };
    };
    assert.equal(blobPull.action, 'pull');
    assert.equal(blobPull.target.url, `https://registry.example.com/v2/team/app/blobs/${DIGEST}`);
  });

  it('builds URLs from the request Host without a public URL, and none without either', () => {
    const noBase = { ...options, baseUrl: null };
    assert.equal(
      (distribution(event({}), noBase) as { target: { url: string } }).target.url,
      `https://registry.example.com/v2/team/app/manifests/${DIGEST}`,
    );
    assert.equal(
      (distribution(event({ request: null }), noBase) as { target: { url?: string } }).target.url,
      undefined,
    );
  });

  it('renders a test event with the test action', () => {
    const test = createTestEvent(
      { id: 7, name: 'ci' },
      { actor: { name: 'root', kind: 'user' }, request: null },
    );
    const record = distribution(test) as Record<string, unknown>;
    assert.equal(record['action'], 'test');
    assert.equal(record['id'], test.id);
    assert.deepEqual(record['target'], {});
    assert.deepEqual(record['actor'], { name: 'root' });
  });
});

describe('CloudEvents structured JSON', () => {
  it('renders the required and optional attributes with the event in data', () => {
    const rendered = renderCloudEvent(event({}), options);
    assert.equal(rendered.contentType, CLOUDEVENTS_MEDIA_TYPE);
    assert.deepEqual(JSON.parse(rendered.body), {
      specversion: '1.0',
      id: '6f1e3f8a-1111-4222-8333-444455556666',
      source: 'https://registry.example.com',
      type: 'io.berth.manifest.pushed',
      time: '2026-12-07T05:00:00.000Z',
      subject: 'team/app:v1',
      datacontenttype: 'application/json',
      data: {
        repository: 'team/app',
        digest: DIGEST,
        mediaType: MANIFEST_TYPE,
        size: 1234,
        tag: 'v1',
        tags: ['v1'],
        url: `https://registry.example.com/v2/team/app/manifests/${DIGEST}`,
        actor: { name: 'alice', kind: 'user' },
        request: {
          id: 'req-1',
          addr: '192.0.2.7',
          host: 'registry.example.com',
          method: 'PUT',
          userAgent: 'docker/27',
        },
      },
    });
  });

  it('names the subject by digest without a tag, sends every type, and sources from the host without a public URL', () => {
    const moved = JSON.parse(
      renderCloudEvent(
        event({
          type: 'tag.moved',
          target: { repository: 'team/app', tag: 'v1', digest: DIGEST, previousDigest: PREVIOUS },
        }),
        options,
      ).body,
    ) as { data: { previousDigest: string } };
    assert.equal(moved.data.previousDigest, PREVIOUS);
    const deleted = JSON.parse(
      renderCloudEvent(
        event({
          type: 'manifest.deleted',
          target: { repository: 'team/app', digest: DIGEST },
          actor: null,
          request: null,
        }),
        {
          ...options,
          baseUrl: null,
        },
      ).body,
    ) as Record<string, unknown>;
    assert.equal(deleted['subject'], `team/app@${DIGEST}`);
    assert.equal(deleted['source'], '/registry/node-1:5000');
    assert.deepEqual(deleted['data'], { repository: 'team/app', digest: DIGEST, actor: null, request: null });
    const created = renderEvent(
      'cloudevents',
      event({ type: 'repository.created', target: { repository: 'team/app' } }),
      options,
    );
    assert.ok(created);
    assert.equal((JSON.parse(created.body) as { subject: string }).subject, 'team/app');
    const test = JSON.parse(
      renderCloudEvent(createTestEvent({ id: 7, name: 'ci' }, { actor: null, request: null }), options).body,
    ) as Record<string, unknown>;
    assert.equal(test['type'], 'io.berth.webhook.test');
    assert.equal(test['subject'], undefined);
    assert.deepEqual(test['data'], { webhook: { id: 7, name: 'ci' }, actor: null, request: null });
  });
});
