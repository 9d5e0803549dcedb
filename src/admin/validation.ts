/**
 * Validation of what administrators type: names, passwords, roles, visibilities, rule patterns, expiries and
 * time filters. Every failure is an `invalid` AdminError naming the field.
 */
import { ROBOT_PREFIX } from '../auth/authenticator.ts';
import { ROLES, type MemberKind, type Role, type Visibility } from '../metadata/auth-store.ts';
import { invalid } from './errors.ts';

/** A repository path component, as the distribution spec defines it. */
const COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
export const MAX_NAME_LENGTH = 64;
export const MIN_PASSWORD_LENGTH = 8;
/** Passwords longer than this are refused (hashing cost is bounded by it). */
export const MAX_PASSWORD_LENGTH = 1024;
export const MAX_DESCRIPTION_LENGTH = 1024;
const MAX_PATTERN_LENGTH = 255;
const PATTERN_RE = /^[a-z0-9._/*?-]+$/;
const MEMBER_KINDS: readonly MemberKind[] = ['user', 'team', 'robot'];

function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
}

/** True when `name` is a valid repository path component of at most 64 characters. */
export function isComponent(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && COMPONENT_RE.test(name);
}

function component(what: string, field: string, name: string): string {
  if (!isComponent(name)) {
    throw invalid(
      `invalid ${what} ${quote(name)}: lowercase letters and digits, separated by '.', '_', '__' or '-', at most ${MAX_NAME_LENGTH} characters`,
      field,
    );
  }
  return name;
}

export const checkUsername = (name: string, field = 'username'): string => component('username', field, name);
export const checkTeamName = (name: string, field = 'name'): string => component('team name', field, name);
export const checkNamespaceName = (name: string, field = 'name'): string =>
  component('namespace name', field, name);

/**
 * The robot login name `robot$<name>` for `name`, given with or without the prefix; the part after the prefix
 * must be a path component.
 */
export function robotName(name: string, field = 'name'): string {
  const bare = name.startsWith(ROBOT_PREFIX) ? name.slice(ROBOT_PREFIX.length) : name;
  component('robot name', field, bare);
  return `${ROBOT_PREFIX}${bare}`;
}

export function checkPassword(password: string, field = 'password'): string {
  if (password.length < MIN_PASSWORD_LENGTH)
    throw invalid(`the password must have at least ${MIN_PASSWORD_LENGTH} characters`, field);
  if (password.length > MAX_PASSWORD_LENGTH)
    throw invalid(`the password must have at most ${MAX_PASSWORD_LENGTH} characters`, field);
  return password;
}

export function checkEmail(email: string | null, field = 'email'): string | null {
  if (email === null || email === '') return null;
  if (email.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(email))
    throw invalid(`invalid email ${quote(email)}`, field);
  return email;
}

export function checkDescription(description: string, field = 'description'): string {
  if (description.length > MAX_DESCRIPTION_LENGTH)
    throw invalid(`the description must have at most ${MAX_DESCRIPTION_LENGTH} characters`, field);
  return description;
}

export function checkRole(role: string, field = 'role'): Role {
  if (!(ROLES as readonly string[]).includes(role))
    throw invalid(`invalid role ${quote(role)}: one of ${ROLES.join(', ')}`, field);
  return role as Role;
}

export function checkVisibility(visibility: string, field = 'visibility'): Visibility {
  if (visibility !== 'public' && visibility !== 'private')
    throw invalid(`invalid visibility ${quote(visibility)}: public or private`, field);
  return visibility;
}

export function checkKind(kind: string, field = 'kind'): MemberKind {
  if (!(MEMBER_KINDS as readonly string[]).includes(kind))
    throw invalid(`invalid member kind ${quote(kind)}: one of ${MEMBER_KINDS.join(', ')}`, field);
  return kind as MemberKind;
}

/** The principal name of a member of `kind`, validated (robots get their `robot$` prefix). */
export function memberName(kind: MemberKind, name: string, field = 'principal'): string {
  if (kind === 'robot') return robotName(name, field);
  return kind === 'team' ? checkTeamName(name, field) : checkUsername(name, field);
}

/** A repository rule glob: non-empty, of `[a-z0-9._/*?-]`. */
export function checkPattern(pattern: string, field = 'pattern'): string {
  if (pattern.length === 0 || pattern.length > MAX_PATTERN_LENGTH || !PATTERN_RE.test(pattern)) {
    throw invalid(
      `invalid pattern ${quote(pattern)}: a glob of lowercase letters, digits and . _ / - * ? (at most ${MAX_PATTERN_LENGTH} characters)`,
      field,
    );
  }
  return pattern;
}

const DURATION_RE = /^(\d+(?:\.\d+)?)(s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses a duration such as `90s`, `15m`, `12h`, `30d`, `2w` to milliseconds, or null when it is not one. */
export function parseDuration(value: string): number | null {
  const m = DURATION_RE.exec(value.trim());
  if (!m) return null;
  const ms = Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number));
  return Number.isSafeInteger(ms) ? ms : null;
}

/** Parses an RFC 3339 / ISO 8601 date-time (a date alone is midnight UTC), or null. */
export function parseDate(value: string): Date | null {
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(value.trim()))
    return null;
  const date = new Date(value.trim());
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * A robot expiry: `never` (or empty) is null; a duration (`30d`) is that long from `now`; otherwise a date-time,
 * which must be in the future.
 */
export function parseExpiry(value: string, field = 'expires', now = Date.now()): Date | null {
  const v = value.trim();
  if (v === '' || v === 'never') return null;
  const ms = parseDuration(v);
  const date = ms !== null ? new Date(now + ms) : parseDate(v);
  if (date === null)
    throw invalid(
      `invalid expiry ${quote(value)}: a duration such as 30d or 12h, a date-time, or never`,
      field,
    );
  return checkFuture(date, field, now);
}

export function checkFuture(date: Date, field: string, now = Date.now()): Date {
  if (date.getTime() <= now) throw invalid('the expiry must be in the future', field);
  return date;
}

/** A time filter: a date-time, or a duration meaning that long ago (`24h` = since a day ago). */
export function parseTime(value: string, field: string, now = Date.now()): Date {
  const ms = parseDuration(value);
  const date = ms !== null ? new Date(now - ms) : parseDate(value);
  if (date === null)
    throw invalid(
      `invalid ${field} ${quote(value)}: a date-time (2025-01-31T12:00:00Z) or a duration ago (24h, 7d)`,
      field,
    );
  return date;
}

/** A page size: a positive whole number; larger than `max` means `max`. */
export function checkLimit(value: number, max: number, field = 'limit'): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw invalid(`${field} must be a positive whole number`, field);
  return Math.min(value, max);
}
