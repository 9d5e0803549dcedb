/** `GET /v2/<name>/tags/list` and `GET /v2/_catalog`: sorting, `n`/`last` pagination, `Link`, errors. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertApiVersion,
  assertError,
  createTestRegistry,
  json,
  randomBlob,
  type Response,
  type TestRegistry,
} from '../helpers/app.ts';

interface TagList {
  name: string;
  tags: string[];
}
interface Catalog {
  repositories: string[];
}

/** The target of a `Link: <...>; rel="next"` header, or undefined when there is none. */
function nextLink(res: Response): string | undefined {
  const link = res.headers.link;
  if (link === undefined) return undefined;
  const m = /^<([^>]+)>;\s*rel="next"$/.exec(String(link));
  assert.ok(m, `Link header has the RFC 5988 form: ${String(link)}`);
  return m[1];
}

describe('tags list', () => {
  let reg: TestRegistry;
  // Unsorted on purpose; byte-wise order puts uppercase first.
  const TAGS = ['v2', 'latest', 'V1', '1.0', 'v10', 'a_b', 'a-b', 'a.b', '_under'];
  const SORTED = [...TAGS].sort();

  before(async () => {
    reg = await createTestRegistry();
    const image = await reg.pushImage('a/b/c', TAGS[0] as string);
    for (const tag of TAGS.slice(1)) {
      assert.equal((await reg.putManifest('a/b/c', tag, image.bytes)).statusCode, 201);
    }
  });
  after(async () => {
    await reg.dispose();
  });

  it('lists every tag, sorted, for a name with several components', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v2/a/b/c/tags/list' });
    assert.equal(res.statusCode, 200);
    assertApiVersion(res);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(json<TagList>(res), { name: 'a/b/c', tags: SORTED });
    assert.equal(res.headers.link, undefined);
  });

  it('n limits the page and Link points at the next one until the end', async () => {
    const seen: string[] = [];
    let url: string | undefined = '/v2/a/b/c/tags/list?n=4';
    let pages = 0;
    while (url !== undefined) {
      const res = await reg.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200, res.body);
      const page = json<TagList>(res);
      assert.equal(page.name, 'a/b/c');
      assert.ok(page.tags.length <= 4);
      seen.push(...page.tags);
      url = nextLink(res);
      if (url !== undefined) {
        assert.equal(page.tags.length, 4, 'a page with a Link is full');
        const u = new URL(url, 'http://x');
        assert.equal(u.pathname, '/v2/a/b/c/tags/list');
        assert.equal(u.searchParams.get('n'), '4');
        assert.equal(u.searchParams.get('last'), page.tags[3]);
      }
      pages++;
    }
    assert.deepEqual(seen, SORTED);
    assert.equal(pages, Math.ceil(SORTED.length / 4));
  });

  it('no Link when the page ends exactly at the last tag', async () => {
    const res = await reg.inject({ method: 'GET', url: `/v2/a/b/c/tags/list?n=${SORTED.length}` });
    assert.deepEqual(json<TagList>(res).tags, SORTED);
    assert.equal(res.headers.link, undefined);
  });

  it('last is exclusive, with or without n', async () => {
    const last = SORTED[2] as string;
    const res = await reg.inject({
      method: 'GET',
      url: `/v2/a/b/c/tags/list?last=${encodeURIComponent(last)}`,
    });
    assert.deepEqual(json<TagList>(res).tags, SORTED.slice(3));
    assert.equal(res.headers.link, undefined);
    const two = await reg.inject({
      method: 'GET',
      url: `/v2/a/b/c/tags/list?n=2&last=${encodeURIComponent(last)}`,
    });
    assert.deepEqual(json<TagList>(two).tags, SORTED.slice(3, 5));
    assert.ok(nextLink(two));
  });

  it('a last that is not a tag starts after where it would sort; past the end gives an empty list', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v2/a/b/c/tags/list?last=b' });
    assert.deepEqual(
      json<TagList>(res).tags,
      SORTED.filter((t) => t > 'b'),
    );
    const end = await reg.inject({ method: 'GET', url: '/v2/a/b/c/tags/list?last=zzz' });
    assert.equal(end.statusCode, 200);
    assert.deepEqual(json<TagList>(end).tags, []);
    assert.equal(end.headers.link, undefined);
  });

  it('a huge n is capped, not refused', async () => {
    for (const n of ['2147483647', '99999999999999999999', '9'.repeat(400)]) {
      const res = await reg.inject({ method: 'GET', url: `/v2/a/b/c/tags/list?n=${n}` });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(json<TagList>(res).tags, SORTED);
      assert.equal(res.headers.link, undefined);
    }
    const catalog = await reg.inject({ method: 'GET', url: '/v2/_catalog?n=99999999999' });
    assert.equal(catalog.statusCode, 200);
  });

  it('an empty n= is the same as no n', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v2/a/b/c/tags/list?n=' });
    assert.equal(res.statusCode, 200);
    const all = await reg.inject({ method: 'GET', url: '/v2/a/b/c/tags/list' });
    assert.deepEqual(JSON.parse(res.body), JSON.parse(all.body));
    assert.ok((JSON.parse(res.body) as { tags: string[] }).tags.length > 0);
  });

  it('n=0 returns an empty list and no Link', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v2/a/b/c/tags/list?n=0' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(json<TagList>(res), { name: 'a/b/c', tags: [] });
    assert.equal(res.headers.link, undefined);
  });

  for (const n of ['-1', 'abc', '1.5', '1e3', '0x10', '+5']) {
    it(`n=${n} answers 400 PAGINATION_NUMBER_INVALID`, async () => {
      const res = await reg.inject({ method: 'GET', url: `/v2/a/b/c/tags/list?n=${n}` });
      assertError(res, 400, 'PAGINATION_NUMBER_INVALID');
    });
  }

  it('an unknown repository answers 404 NAME_UNKNOWN', async () => {
    assertError(await reg.inject({ method: 'GET', url: '/v2/a/b/nothing/tags/list' }), 404, 'NAME_UNKNOWN');
    // A prefix of an existing name is not a repository.
    assertError(await reg.inject({ method: 'GET', url: '/v2/a/b/tags/list' }), 404, 'NAME_UNKNOWN');
  });

  it('a repository with blobs but no tags lists an empty tag list', async () => {
    await reg.pushBlob('blobs/only', randomBlob(8));
    const res = await reg.inject({ method: 'GET', url: '/v2/blobs/only/tags/list' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(json<TagList>(res), { name: 'blobs/only', tags: [] });
  });

  it('untagged manifests are not listed; a deleted tag disappears', async () => {
    const image = await reg.pushImage('tags/untag', null);
    assert.equal((await reg.putManifest('tags/untag', 'x', image.bytes)).statusCode, 201);
    assert.deepEqual(
      json<TagList>(await reg.inject({ method: 'GET', url: '/v2/tags/untag/tags/list' })).tags,
      ['x'],
    );
    assert.equal((await reg.inject({ method: 'DELETE', url: '/v2/tags/untag/manifests/x' })).statusCode, 202);
    const res = await reg.inject({ method: 'GET', url: '/v2/tags/untag/tags/list' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(json<TagList>(res).tags, []);
  });
});

describe('tags list page size limit', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'registry.tagsPageSize': 2, 'registry.catalogPageSize': 2 });
  });
  after(async () => {
    await reg.dispose();
  });

  it('without n, pages have the configured size and a Link; a larger n is capped', async () => {
    const image = await reg.pushImage('capped', 't1');
    for (const tag of ['t2', 't3'])
      assert.equal((await reg.putManifest('capped', tag, image.bytes)).statusCode, 201);
    const first = await reg.inject({ method: 'GET', url: '/v2/capped/tags/list' });
    assert.deepEqual(json<TagList>(first).tags, ['t1', 't2']);
    assert.ok(nextLink(first));
    const big = await reg.inject({ method: 'GET', url: '/v2/capped/tags/list?n=1000' });
    assert.deepEqual(json<TagList>(big).tags, ['t1', 't2']);
    const next = nextLink(big) as string;
    const rest = await reg.inject({ method: 'GET', url: next });
    assert.deepEqual(json<TagList>(rest).tags, ['t3']);
    assert.equal(rest.headers.link, undefined);
  });

  it('the catalog is capped the same way', async () => {
    for (const name of ['cat/x', 'cat/y', 'cat/z']) await reg.pushBlob(name, randomBlob(4));
    const res = await reg.inject({ method: 'GET', url: '/v2/_catalog?n=500' });
    assert.equal(json<Catalog>(res).repositories.length, 2);
    assert.ok(nextLink(res));
  });
});

describe('catalog', () => {
  let reg: TestRegistry;
  const REPOS = ['zeta', 'alpha/one', 'alpha', 'alpha/one/two', 'beta-x', 'beta.x', 'beta_x', 'a/b/c'];
  const SORTED = [...REPOS].sort();

  before(async () => {
    reg = await createTestRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('an empty registry has an empty catalog', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v2/_catalog' });
    assert.equal(res.statusCode, 200);
    assertApiVersion(res);
    assert.deepEqual(json<Catalog>(res), { repositories: [] });
    assert.equal(res.headers.link, undefined);
  });

  it('lists repositories (pushed by blob or manifest) sorted', async () => {
    for (const [i, name] of REPOS.entries()) {
      if (i % 2 === 0) await reg.pushImage(name, 'latest');
      else await reg.pushBlob(name, randomBlob(8));
    }
    const res = await reg.inject({ method: 'GET', url: '/v2/_catalog' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(json<Catalog>(res), { repositories: SORTED });
    assert.equal(res.headers.link, undefined);
  });

  it('pages with n and Link, last exclusive', async () => {
    const seen: string[] = [];
    let url: string | undefined = '/v2/_catalog?n=3';
    while (url !== undefined) {
      const res = await reg.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200);
      const page = json<Catalog>(res).repositories;
      seen.push(...page);
      url = nextLink(res);
      if (url !== undefined) {
        const u = new URL(url, 'http://x');
        assert.equal(u.pathname, '/v2/_catalog');
        assert.equal(u.searchParams.get('n'), '3');
        assert.equal(u.searchParams.get('last'), page[page.length - 1]);
      }
    }
    assert.deepEqual(seen, SORTED);
    const after2 = await reg.inject({
      method: 'GET',
      url: `/v2/_catalog?last=${encodeURIComponent(SORTED[1] as string)}`,
    });
    assert.deepEqual(json<Catalog>(after2).repositories, SORTED.slice(2));
  });

  it('n=0 returns an empty list and no Link', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v2/_catalog?n=0' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(json<Catalog>(res), { repositories: [] });
    assert.equal(res.headers.link, undefined);
  });

  for (const n of ['-1', 'x', '2.5']) {
    it(`n=${n} answers 400 PAGINATION_NUMBER_INVALID`, async () => {
      assertError(
        await reg.inject({ method: 'GET', url: `/v2/_catalog?n=${n}` }),
        400,
        'PAGINATION_NUMBER_INVALID',
      );
    });
  }

  it('_catalog is not taken for a repository name', async () => {
    assertError(await reg.inject({ method: 'GET', url: '/v2/_catalog/tags/list' }), 400, 'NAME_INVALID');
  });
});
