/**
 * The nesting check run on client JSON before it is parsed (`src/util/json-depth.ts`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jsonNestingExceeds, MAX_JSON_DEPTH } from '../../src/util/json-depth.ts';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

/** `depth` arrays and objects inside one another, alternating, around `inner`. */
function nested(depth: number, inner = '1'): string {
  let text = inner;
  for (let i = 0; i < depth; i++) text = i % 2 === 0 ? `[${text}]` : `{"k":${text}}`;
  return text;
}

describe('jsonNestingExceeds', () => {
  it('counts arrays and objects together, up to and past the limit', () => {
    for (const limit of [1, 5, MAX_JSON_DEPTH]) {
      assert.equal(jsonNestingExceeds(bytes(nested(limit)), limit), false, `depth ${limit}`);
      assert.equal(jsonNestingExceeds(bytes(nested(limit + 1)), limit), true, `depth ${limit + 1}`);
    }
    assert.equal(jsonNestingExceeds(bytes('1'), 0), false);
    assert.equal(jsonNestingExceeds(bytes('[]'), 0), true);
  });

  it('measures depth, not the number of containers', () => {
    const wide = `[${Array.from({ length: 10_000 }, () => '{"a":[1,{"b":[]}]}').join(',')}]`;
    assert.equal(jsonNestingExceeds(bytes(wide), 5), false);
    assert.equal(jsonNestingExceeds(bytes(wide), 4), true);
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    const tricky = [
      '{"a":"[[[[{{{{"}',
      '{"a":"\\"[[[[\\""}',
      '{"a\\\\":"[[[["}',
      '{"a":"\\\\\\"[[[["}',
      '{"ü[[[":"✓{{{"}',
    ];
    for (const text of tricky) {
      JSON.parse(text); // each is valid JSON of depth 1
      assert.equal(jsonNestingExceeds(bytes(text), 1), false, text);
    }
    // A backslash escapes the closing quote: what follows is still inside the string.
    assert.equal(jsonNestingExceeds(bytes('["\\"]]]]","x"]'), 1), false);
    // An escaped backslash does not: the bracket after the string counts.
    assert.equal(jsonNestingExceeds(bytes('["\\\\",[1]]'), 1), true);
  });

  it('answers for a million nested arrays without recursing', () => {
    const n = 1_000_000;
    assert.equal(jsonNestingExceeds(bytes('['.repeat(n) + ']'.repeat(n))), true);
    assert.equal(jsonNestingExceeds(bytes('['.repeat(n))), true);
  });

  it('leaves invalid JSON to the parser', () => {
    for (const text of ['', ']]]]', '{"a":', '"unterminated [[[', '{]']) {
      assert.equal(jsonNestingExceeds(bytes(text), 1), false, text);
    }
  });
});
