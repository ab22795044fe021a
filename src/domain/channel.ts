import type { Participant } from './participant.js';

/** Per-channel operator overrides of the catalogue's defaults (the third-party role table is not official). */
export interface ChannelOverride {
  senderRoles?: string[];
  receiverRoles?: string[];
  alwaysRoles?: string[];
  /** DIP IDs that get every message on the channel ("always" routing to a named participant, spec 5.5.3). */
  alwaysParticipants?: string[];
  /** The DIP generates a workflow correlation ID for messages on this channel (spec 5.5.5). */
  workflowStarter?: boolean;
  /** Undelivered messages older than this are dead-lettered and their sender told (spec 5.5.8). */
  staleAfterMinutes?: number;
  /** The operator means a staleAfterMinutes below spec 5.4's 14 days (refused without it: shortRetention). */
  allowShortRetention?: boolean;
  /** How long this channel's messages stay in the archive (spec 5.5.7). */
  archiveRetentionDays?: number;
  /** Per receiving role, the payload paths its copy goes without (spec 5.5.6). */
  obfuscation?: Record<string, string[]>;
  /** Messages on this channel update the MPAN lookup (spec 5.5.14). */
  mpanFeed?: boolean;
  /** Path under `payload` of the date secondary routing addresses by. */
  addressingDate?: string;
  /** Spec 5.2.2 security pattern: 1 signed (default), 2 encrypted via the DIP, 3 end to end; 0 runs as 1. */
  securityPattern?: 0 | SecurityPattern;
  /**
   * Spec 5.2.2 security category: 1 public data, 2 MPAN, 3 MPAN + PII, 4 MPAN + consumption. Sets the
   * pattern the spec prefers for it (1 → pattern 1, 2–4 → pattern 2) unless securityPattern says otherwise.
   */
  securityCategory?: 1 | 2 | 3 | 4;
}

/**
 * A security pattern a channel runs and a message is accepted under (spec 5.2.2; src/pipeline/patterns.ts
 * says what each means on the wire). A message keeps the one it was accepted under (AcceptedMessage).
 */
export type SecurityPattern = 1 | 2 | 3;

/**
 * Whether a channel runs (spec 5.3, 5.13.5): `paused` holds its deliveries and ingest answers 503 (other
 * channels untouched); `withdrawn` refuses new messages as an unknown channel while what was accepted
 * still drains.
 */
export type ChannelAvailability = 'active' | 'paused' | 'withdrawn';

/** A channel's operator settings as versioned while the DIP runs (the latest version is in force). */
export interface ChannelSettingsDoc {
  state: ChannelAvailability;
  settings: ChannelOverride;
  /** Participants may opt into the channel themselves (self-service): they then receive every message on it. */
  optIn: boolean;
  /** Why the operator made the change (shown in the history). */
  note: string;
}

/** A message channel as the routing core sees it (catalogue data plus the operator's overrides). */
export interface ChannelRouting {
  interfaceId: string;
  publicationId: string;
  senderRoles: string[];
  receiverRoles: string[];
  /** Receiving roles whose every holder gets every message on the channel ("always" routing). */
  alwaysRoles: string[];
  /** Participants (DIP IDs) named to get every message on the channel, whatever their roles (spec 5.5.3). */
  alwaysParticipants: string[];
  primaryRouting: boolean;
}

/**
 * Central services that hold a receiving role alone (one market-wide data service, one load shaping
 * service, ...). By default "always" routing sends to them; addressed roles (suppliers, distributors,
 * agents) are reached by primary or MPAN routing instead. An operator can change this per channel.
 */
export const CENTRAL_ROLES = new Set(['MDS', 'LSS', 'EES', 'VAS', 'ISD', 'DCC', 'ECS']);

export function defaultAlwaysRoles(receiverRoles: readonly string[]): string[] {
  return receiverRoles.filter((r) => CENTRAL_ROLES.has(r));
}

/**
 * A participant receives on a channel when it holds a receiving role, a role the channel always sends
 * to, or is named to always get the channel's messages: it may then configure its webhook, pull, replay.
 */
export function receivesOn(channel: ChannelRouting, p: Pick<Participant, 'dipId' | 'roles'>): boolean {
  return p.roles.some((r) => channel.receiverRoles.includes(r) || channel.alwaysRoles.includes(r)) || channel.alwaysParticipants.includes(p.dipId);
}

/**
 * The capacity a copy was routed in (spec 5.5.6: what a recipient may see follows the role it receives
 * a message as): the role codes, sorted and joined by ',' ('SDS', 'LDSO,SUP'). Kept with each queue entry
 * as this short string, so every road out of the DIP strips the copy for it. Routing decides it:
 * - MPAN lookup (secondary): the slot's roles the holder holds that receive on the channel (its DS slot
 *   makes a supplier-and-data-service a data service for that copy, not a supplier);
 * - "always" roles: the always-routed roles it holds that receive on the channel; one that does not (an
 *   operator's alwaysRoles may name it) has no obfuscation rule, so its holder, like a participant the
 *   channel names to always receive, is reached in the roles it receives in there, or all it holds when
 *   none does (as copyRoles without a capacity);
 * - a primary recipient the sender names: its roles that receive on the channel (the sender chose it,
 *   not a capacity of it);
 * - reached in several capacities for one message: one copy, for the union of them (a field any of
 *   them may see is shown).
 */
export function capacityCode(roles: readonly string[]): string {
  // One role, by far the most usual, as it is: routing makes one of these for every recipient of every message.
  return roles.length === 1 ? roles[0]! : [...new Set(roles)].sort().join(',');
}

/**
 * The roles a recipient's copy is made for (obfuscation, spec 5.5.6): the capacity it was routed in when
 * its queue entry recorded one; otherwise (entries queued before capacities were recorded, and what the
 * DIP itself sends) those it receives in on the channel, or, for a recipient reached only by "always"
 * routing in a role that does not receive there, all it holds.
 */
export function copyRoles(channel: Pick<ChannelRouting, 'receiverRoles'>, roles: readonly string[], capacity: string | null = null): string[] {
  if (capacity) return capacity.split(',');
  const receiving = roles.filter((r) => channel.receiverRoles.includes(r));
  return receiving.length > 0 ? receiving : [...roles];
}

/** Spec 5.4: the DIP keeps an offline Consumer's messages up to 14 days for standard consumption (then replay). */
export const RETENTION_MINUTES = 14 * 1440;

/**
 * Why a staleness limit of `minutes` cuts spec 5.4's 14 days short (read after the setting and its value),
 * or null when it does not. The limit exists for spec 5.5.8 (a stale message is dead-lettered and its
 * sender told) and a channel may mean a shorter one, but a message dead-lettered is one its recipient can
 * no longer fetch: below 14 days that is a departure from the spec, so it is refused unless acknowledged.
 */
export function shortRetention(minutes: number): string | null {
  if (minutes >= RETENTION_MINUTES) return null;
  const [n, unit] = minutes % 1440 === 0 ? [minutes / 1440, 'day'] : minutes % 60 === 0 ? [minutes / 60, 'hour'] : [minutes, 'minute'];
  return `(${n} ${unit}${n === 1 ? '' : 's'}) dead-letters a message its recipient has not fetched before the 14 days (${RETENTION_MINUTES} minutes) spec 5.4 keeps it for`;
}
