/**
 * A UUID shaped as `crypto.randomUUID()` writes it (lowercase hex, hyphenated). Ids the registry and its storage
 * drivers issue that way (upload sessions, driver uploads) are checked against it when they come back from a
 * client or a database, so that nothing else is ever used to build a key or a path.
 */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
