/** `GET /v1/_ping` and `GET /v1/search?q=&n=&page=`, as `docker search` and `podman search` call them. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertApiVersion,
  assertError,
  createTestRegistry,
  json,
  randomBlob,
  type TestRegistry,
} from '../helpers/app.ts';

interface SearchResponse {
  query: string;
  num_results: number;
  num_pages: number;
  page: number;
  page_size: number;
  results: {
    name: string;
    description: string;
    star_count: number;
    is_official: boolean;
    is_automated: boolean;
  }[];
}

describe('v1 search', () => {
  let reg: TestRegistry;
  // `axb/c` would match `a_b` if `_` were a SQL wildcard.
  const REPOS = [
    'library/nginx',
    'team/nginx-proxy',
    'team/web',
    'nginxinc/unit',
    'other/app',
    'a_b/c',
    'axb/c',
  ];

  before(async () => {
    reg = await createTestRegistry();
    for (const name of REPOS) await reg.pushBlob(name, randomBlob(4));
  });
  after(async () => {
    await reg.dispose();
  });

  it('GET /v1/_ping answers 200', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v1/_ping' });
    assert.equal(res.statusCode, 200);
    assertApiVersion(res);
  });

  it('answers the Docker Hub shape with every field', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v1/search?q=web' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(json<SearchResponse>(res), {
      query: 'web',
      num_results: 1,
      num_pages: 1,
      page: 1,
      page_size: 25,
      results: [
        { name: 'team/web', description: '', star_count: 0, is_official: false, is_automated: false },
      ],
    });
  });

  it('matches a case-insensitive substring anywhere in the name, sorted', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v1/search?q=NGINX&n=25' });
    const body = json<SearchResponse>(res);
    assert.equal(body.query, 'NGINX');
    assert.deepEqual(
      body.results.map((r) => r.name),
      ['library/nginx', 'nginxinc/unit', 'team/nginx-proxy'],
    );
    assert.equal(body.num_results, 3);
  });

  it('pages with n and page', async () => {
    const first = json<SearchResponse>(await reg.inject({ method: 'GET', url: '/v1/search?q=nginx&n=2' }));
    assert.deepEqual(
      first.results.map((r) => r.name),
      ['library/nginx', 'nginxinc/unit'],
    );
    assert.equal(first.num_results, 3);
    assert.equal(first.num_pages, 2);
    assert.equal(first.page, 1);
    assert.equal(first.page_size, 2);
    const second = json<SearchResponse>(
      await reg.inject({ method: 'GET', url: '/v1/search?q=nginx&n=2&page=2' }),
    );
    assert.deepEqual(
      second.results.map((r) => r.name),
      ['team/nginx-proxy'],
    );
    assert.equal(second.page, 2);
    const beyond = json<SearchResponse>(
      await reg.inject({ method: 'GET', url: '/v1/search?q=nginx&n=2&page=5' }),
    );
    assert.deepEqual(beyond.results, []);
    assert.equal(beyond.num_results, 3);
  });

  it('an empty query lists everything', async () => {
    const body = json<SearchResponse>(await reg.inject({ method: 'GET', url: '/v1/search?q=' }));
    assert.equal(body.num_results, 7);
    const noQ = json<SearchResponse>(await reg.inject({ method: 'GET', url: '/v1/search' }));
    assert.equal(noQ.num_results, 7);
  });

  it('SQL wildcards in the query are literal', async () => {
    const underscore = json<SearchResponse>(await reg.inject({ method: 'GET', url: '/v1/search?q=a_b' }));
    assert.deepEqual(
      underscore.results.map((r) => r.name),
      ['a_b/c'],
    );
    const percent = json<SearchResponse>(await reg.inject({ method: 'GET', url: '/v1/search?q=%25' }));
    assert.deepEqual(percent.results, []);
  });

  it('no match gives an empty result list', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v1/search?q=zzzz' });
    assert.equal(res.statusCode, 200);
    const body = json<SearchResponse>(res);
    assert.equal(body.num_results, 0);
    assert.deepEqual(body.results, []);
  });

  it('n is capped at 100; n=0 means the default', async () => {
    assert.equal(
      json<SearchResponse>(await reg.inject({ method: 'GET', url: '/v1/search?q=a&n=500' })).page_size,
      100,
    );
    assert.equal(
      json<SearchResponse>(await reg.inject({ method: 'GET', url: '/v1/search?q=a&n=0' })).page_size,
      25,
    );
  });

  it('a malformed n or page answers 400 with the envelope', async () => {
    for (const q of ['n=-1', 'n=abc', 'page=0', 'page=-1', 'page=x']) {
      assertError(
        await reg.inject({ method: 'GET', url: `/v1/search?q=a&${q}` }),
        400,
        'PAGINATION_NUMBER_INVALID',
      );
    }
  });
});
