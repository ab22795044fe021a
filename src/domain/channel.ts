import type { Participant } from './participant.js';

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
 * The roles a recipient's copy is made for (obfuscation, spec 5.5.6): those it receives in on the channel,
 * or, for a recipient reached only by "always" routing in a role that does not receive there, all it holds.
 */
export function copyRoles(channel: Pick<ChannelRouting, 'receiverRoles'>, roles: readonly string[]): string[] {
  const receiving = roles.filter((r) => channel.receiverRoles.includes(r));
  return receiving.length > 0 ? receiving : [...roles];
}
