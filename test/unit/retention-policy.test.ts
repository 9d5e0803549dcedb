/**
 * The retention decision as a pure function: each rule alone, the rules OR-ed, repository include and exclude
 * globs, equal timestamps broken by tag name whatever the input order, the untagged delay, and policy validation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  keptBy,
  parseRetentionPolicy,
  RetentionPolicyError,
  selectsRepository,
  tagFacts,
  tagsToUntag,
  untaggedExpired,
  type TagFacts,
} from '../../src/lifecycle/retention-policy.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 0, 31);

/** Tags pushed (and pulled) the given number of days before NOW. */
function tag(name: string, pushedDaysAgo: number, pulledDaysAgo: number | null = null): TagFacts {
  return {
    tag: name,
    pushedAt: NOW - pushedDaysAgo * DAY,
    lastPulledAt: pulledDaysAgo === null ? null : NOW - pulledDaysAgo * DAY,
  };
}

const TAGS = [
  tag('v1', 30, 1),
  tag('v2', 20, null),
  tag('v3', 10, 15),
  tag('v4', 5, null),
  tag('latest', 2, 0.5),
  tag('release-1', 40, null),
  tag('release-1-rc', 41, null),
];

const sorted = (s: Set<string>): string[] => [...s].sort();

describe('retention rules', () => {
  it('keepLastPushed keeps the N most recently pushed', () => {
    assert.deepEqual(sorted(keptBy({ kind: 'keepLastPushed', count: 2 }, TAGS, NOW)), ['latest', 'v4']);
  });

  it('keepLastPulled keeps the N most recently pulled, never a tag never pulled', () => {
    assert.deepEqual(sorted(keptBy({ kind: 'keepLastPulled', count: 2 }, TAGS, NOW)), ['latest', 'v1']);
    assert.deepEqual(sorted(keptBy({ kind: 'keepLastPulled', count: 10 }, TAGS, NOW)), [
      'latest',
      'v1',
      'v3',
    ]);
  });

  it('pushedWithin and pulledWithin keep by age, inclusive of the boundary', () => {
    assert.deepEqual(sorted(keptBy({ kind: 'pushedWithin', days: 10 }, TAGS, NOW)), ['latest', 'v3', 'v4']);
    assert.deepEqual(sorted(keptBy({ kind: 'pulledWithin', days: 1 }, TAGS, NOW)), ['latest', 'v1']);
  });

  it('tagPattern keeps what matches an include and no exclude; alwaysKeep keeps what matches', () => {
    assert.deepEqual(
      sorted(keptBy({ kind: 'tagPattern', include: ['release-*'], exclude: ['*-rc'] }, TAGS, NOW)),
      ['release-1'],
    );
    assert.deepEqual(sorted(keptBy({ kind: 'alwaysKeep', tags: ['latest', 'v?'] }, TAGS, NOW)), [
      'latest',
      'v1',
      'v2',
      'v3',
      'v4',
    ]);
  });

  it('a tag is kept when ANY rule keeps it (OR), and untagged otherwise', () => {
    const policy = parseRetentionPolicy({
      rules: [
        { kind: 'keepLastPushed', count: 1 },
        { kind: 'pulledWithin', days: 2 },
        { kind: 'tagPattern', include: ['release-*'], exclude: ['*-rc'] },
      ],
    });
    assert.deepEqual(tagsToUntag(policy, TAGS, NOW), ['release-1-rc', 'v2', 'v3', 'v4']);
  });

  it('equal push times are broken by tag name (byte order), whatever order the tags come in', () => {
    const same = ['b', 'a', 'C', 'c', 'B'].map((n) => tag(n, 3));
    const policy = parseRetentionPolicy({ rules: [{ kind: 'keepLastPushed', count: 2 }] });
    const expected = ['a', 'b', 'c'];
    assert.deepEqual(tagsToUntag(policy, same, NOW), expected, 'B and C sort before a, b, c');
    for (let i = 0; i < 10; i++) {
      const shuffled = [...same].sort(() => Math.random() - 0.5);
      assert.deepEqual(tagsToUntag(policy, shuffled, NOW), expected);
    }
    const pulled = ['y', 'x', 'z'].map((n) => tag(n, 3, 1));
    const byPull = parseRetentionPolicy({ rules: [{ kind: 'keepLastPulled', count: 1 }] });
    assert.deepEqual(tagsToUntag(byPull, pulled, NOW), ['y', 'z']);
  });

  it("a tag's last pull is the later of its own and its manifest's (pulled by digest)", () => {
    const facts = tagFacts({
      tag: 't',
      digest: 'sha256:00' as never,
      pushedAt: 1,
      lastPulledAt: 5,
      pullCount: 1,
      manifestLastPulledAt: 9,
    });
    assert.equal(facts.lastPulledAt, 9);
    assert.equal(
      tagFacts({
        tag: 't',
        digest: 'sha256:00' as never,
        pushedAt: 1,
        lastPulledAt: null,
        pullCount: 0,
        manifestLastPulledAt: null,
      }).lastPulledAt,
      null,
    );
  });
});

describe('repository selection', () => {
  it('include and exclude globs are relative to the namespace; ** spans components', () => {
    const policy = parseRetentionPolicy({
      repositories: { include: ['app*', 'tools/**'], exclude: ['app-keep', 'tools/legacy/*'] },
      rules: [{ kind: 'keepLastPushed', count: 1 }],
    });
    const pick = (r: string): boolean => selectsRepository(policy, 'team', r);
    assert.equal(pick('team/app'), true);
    assert.equal(pick('team/app-web'), true);
    assert.equal(pick('team/app-keep'), false);
    assert.equal(pick('team/app/sub'), false, '* stays within one component');
    assert.equal(pick('team/tools/a/b'), true);
    assert.equal(pick('team/tools/legacy/x'), false);
    assert.equal(pick('team/other'), false);
    const all = parseRetentionPolicy({ rules: [{ kind: 'keepLastPushed', count: 1 }] });
    assert.equal(selectsRepository(all, 'team', 'team'), true, 'the default ** selects every repository');
    assert.equal(selectsRepository(all, 'team', 'team/a/b'), true);
  });
});

describe('untagged manifests', () => {
  it('are removed once pushed and last pulled more than the delay ago, or kept', () => {
    const policy = parseRetentionPolicy({
      rules: [{ kind: 'keepLastPushed', count: 1 }],
      untagged: { action: 'delete', afterDays: 7 },
    });
    assert.equal(untaggedExpired(policy, { pushedAt: NOW - 8 * DAY, lastPulledAt: null }, NOW), true);
    assert.equal(untaggedExpired(policy, { pushedAt: NOW - 6 * DAY, lastPulledAt: null }, NOW), false);
    assert.equal(untaggedExpired(policy, { pushedAt: NOW - 8 * DAY, lastPulledAt: NOW - DAY }, NOW), false);
    const keep = parseRetentionPolicy({ rules: [{ kind: 'keepLastPushed', count: 1 }] });
    assert.equal(keep.untagged.action, 'keep');
    assert.equal(untaggedExpired(keep, { pushedAt: 0, lastPulledAt: null }, NOW), false);
  });
});

describe('policy validation', () => {
  it('fills defaults and refuses unknown fields, unknown rules, no rules and bad counts, naming the field', () => {
    const policy = parseRetentionPolicy({ rules: [{ kind: 'alwaysKeep', tags: ['latest'] }] });
    assert.deepEqual(policy.repositories, { include: ['**'], exclude: [] });
    assert.deepEqual(policy.untagged, { action: 'keep', afterDays: 7 });
    const refused = (value: unknown, field: RegExp): void => {
      assert.throws(
        () => parseRetentionPolicy(value),
        (e: unknown) => e instanceof RetentionPolicyError && field.test(e.message),
      );
    };
    refused({ rules: [] }, /^rules/);
    refused({ rules: [{ kind: 'keepEverything' }] }, /^rules\.0\.kind/);
    refused({ rules: [{ kind: 'keepLastPushed', count: 0 }] }, /^rules\.0\.count/);
    refused({ rules: [{ kind: 'keepLastPushed', count: 1, extra: true }] }, /unknown field rules\.0\.extra/);
    refused(
      { rules: [{ kind: 'keepLastPushed', count: 1 }], untagged: { action: 'purge' } },
      /^untagged\.action/,
    );
    refused({ rules: [{ kind: 'keepLastPushed', count: 1 }], other: 1 }, /unknown field other/);
  });
});
