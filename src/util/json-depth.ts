/**
 * How deeply a JSON document from a client may nest arrays and objects, and the check, run on the bytes before
 * they are parsed.
 *
 * V8's JSON.parse is iterative and takes any depth, but what runs on the result may recurse: JSON.stringify
 * throws past about 4,000 levels on Node's default stack, and clients pulling a manifest give up at 10,000
 * (Go's encoding/json). Real documents are shallow: the deepest manifest field, an index's
 * `manifests[].platform["os.features"][]`, sits at depth 5, and the admin API's bodies are flat objects.
 */

/** Deepest nesting accepted: 64 levels, over ten times what any manifest uses, far below what breaks anything. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_BRACKET = 0x5b; // [
const CLOSE_BRACKET = 0x5d; // ]
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }

/**
 * True when the JSON text `bytes` (UTF-8) opens more than `limit` arrays and objects inside one another. One pass
 * over the bytes, without parsing: brackets inside strings do not count (escapes are honoured); the text need not
 * be valid JSON, which the parser judges afterwards. UTF-8 continuation bytes never equal these ASCII characters.
 */
export function jsonNestingExceeds(bytes: Uint8Array, limit: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      // An escaped character, whatever it is, is part of the string: skip it.
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) {
      if (++depth > limit) return true;
    } else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}
