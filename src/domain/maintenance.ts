/**
 * Maintenance notices (spec 5.13.5): the operator publishes a window in which the DIP, or some of its
 * channels, may not be available; participants see the notices through the API and are told by e-mail and
 * webhook when one is published, amended or withdrawn. Pure rules: what a valid notice is, and which are
 * still of interest.
 */
import { zonedInstant } from './time.js';

/** The whole DIP, or the channels named (upper-case interface IDs, e.g. IF-021). */
export type MaintenanceScope = { kind: 'dip' } | { kind: 'channels'; channels: string[] };

export type MaintenanceState = 'published' | 'withdrawn';

export interface MaintenanceNotice {
  /** `MN-` and a number, assigned on publication; stable across amendments. */
  id: string;
  /** 1 when published; every amendment and the withdrawal add one. */
  version: number;
  /** Epoch ms. */
  start: number;
  /** Epoch ms, after `start`. */
  end: number;
  /** What participants are told (plain text, at most MAX_TEXT characters). */
  text: string;
  scope: MaintenanceScope;
  state: MaintenanceState;
  publishedAt: number;
  publishedBy: string;
  changedAt: number;
  changedBy: string;
}

/** What the operator gives to publish or amend a notice. */
export interface MaintenanceInput {
  /** ISO-8601 date-time with a zone (Z or ±hh:mm). */
  start: string;
  end: string;
  text: string;
  /** Channel IDs; absent, null or empty: the whole DIP. */
  channels?: string[] | null;
}

export const MAX_TEXT = 4000;
/** A window longer than this is almost surely a typing error (a year for a day). */
export const MAX_WINDOW_MS = 31 * 86_400_000;

export type Checked<T> = { ok: true; value: T } | { ok: false; errors: string[] };

function instant(field: string, value: string, errors: string[]): number {
  const parsed = zonedInstant(field, value, false);
  if ('ms' in parsed) return parsed.ms;
  errors.push(parsed.problem);
  return Number.NaN;
}

/**
 * Checks what the operator gave, naming every field that is wrong and why. `knownChannel` says whether
 * a channel ID is in the catalogue; `now` refuses a window that has already ended (nobody can plan for it).
 */
export function checkMaintenance(input: MaintenanceInput, now: number, knownChannel: (id: string) => boolean): Checked<Pick<MaintenanceNotice, 'start' | 'end' | 'text' | 'scope'>> {
  const errors: string[] = [];
  const start = instant('start', input.start, errors);
  const end = instant('end', input.end, errors);
  if (!Number.isNaN(start) && !Number.isNaN(end)) {
    if (end <= start) errors.push(`end: ${input.end} is not after start ${input.start}`);
    else if (end - start > MAX_WINDOW_MS) errors.push(`end: the window is longer than ${MAX_WINDOW_MS / 86_400_000} days; publish one notice per window`);
    if (end <= now) errors.push(`end: ${input.end} has already passed`);
  }
  const text = input.text.trim();
  if (text.length === 0) errors.push('text: say what is maintained and what participants should expect');
  if (text.length > MAX_TEXT) errors.push(`text: ${text.length} characters, at most ${MAX_TEXT}`);
  const channels = [...new Set((input.channels ?? []).map((c) => c.trim().toUpperCase()))];
  channels.forEach((c, i) => {
    if (!knownChannel(c)) errors.push(`channels[${i}]: '${c}' is not a channel of this DIP`);
  });
  if (errors.length) return { ok: false, errors };
  return { ok: true, value: { start, end, text, scope: channels.length ? { kind: 'channels', channels: channels.sort() } : { kind: 'dip' } } };
}

/** Published and not yet over: what participants are shown. */
export const inForceOrAhead = (n: MaintenanceNotice, now: number): boolean => n.state === 'published' && n.end > now;

/** Whether a notice concerns a participant that uses `channels` (a DIP-wide notice concerns everyone). */
export const concerns = (n: MaintenanceNotice, channels: ReadonlySet<string>): boolean =>
  n.scope.kind === 'dip' || n.scope.channels.some((c) => channels.has(c));

/** Whether a notice concerns one channel (DIP-wide notices concern every channel). */
export const coversChannel = (n: MaintenanceNotice, channel: string): boolean => n.scope.kind === 'dip' || n.scope.channels.includes(channel.toUpperCase());

/** One line naming what a notice covers, for e-mails and pages. */
export const scopeText = (s: MaintenanceScope): string => (s.kind === 'dip' ? 'the whole DIP' : `channels ${s.channels.join(', ')}`);

/** A notice as participants see it (the API, webhooks): times as ISO-8601. */
export interface PublicNotice {
  id: string;
  version: number;
  start: string;
  end: string;
  text: string;
  /** `dip` (the whole DIP) or the channel IDs it concerns. */
  scope: 'dip' | 'channels';
  channels: string[];
  state: MaintenanceNotice['state'];
  publishedAt: string;
  changedAt: string;
}

export const publicNotice = (n: MaintenanceNotice): PublicNotice => ({
  id: n.id,
  version: n.version,
  start: new Date(n.start).toISOString(),
  end: new Date(n.end).toISOString(),
  text: n.text,
  scope: n.scope.kind,
  channels: n.scope.kind === 'channels' ? n.scope.channels : [],
  state: n.state,
  publishedAt: new Date(n.publishedAt).toISOString(),
  changedAt: new Date(n.changedAt).toISOString(),
});

/**
 * How long a window that has ended stays on the public maintenance page: long enough for someone who saw
 * an outage to find that it was announced, not so long that the page fills with history.
 */
export const RECENTLY_ENDED_MS = 24 * 3_600_000;

/** Where a window stands at a moment, as the public page says it. */
export type WindowStatus = 'upcoming' | 'in progress' | 'ended';

export const windowStatus = (n: MaintenanceNotice, now: number): WindowStatus => (now < n.start ? 'upcoming' : now < n.end ? 'in progress' : 'ended');

/**
 * What the public maintenance page lists (spec 5.13.5 "published on the system website"): published
 * windows not over, and those that ended within RECENTLY_ENDED_MS; never a withdrawn one. Soonest first.
 */
export function publicWindows(notices: readonly MaintenanceNotice[], now: number): MaintenanceNotice[] {
  return onFeed(notices, 'published', now);
}

/**
 * Withdrawn windows the public calendar feed still carries, as cancelled (RFC 5545 3.8.1.11): a calendar
 * that imported one keeps it until the feed says STATUS:CANCELLED, so each is said while the window would
 * have been listed (not over, or ended within RECENTLY_ENDED_MS). Every notice was published before it
 * could be withdrawn. Soonest first.
 */
export function withdrawnWindows(notices: readonly MaintenanceNotice[], now: number): MaintenanceNotice[] {
  return onFeed(notices, 'withdrawn', now);
}

function onFeed(notices: readonly MaintenanceNotice[], state: MaintenanceState, now: number): MaintenanceNotice[] {
  return notices.filter((n) => n.state === state && n.end > now - RECENTLY_ENDED_MS).sort((a, b) => a.start - b.start || a.id.localeCompare(b.id));
}
