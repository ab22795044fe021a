/** A message channel as the routing core sees it (catalogue data plus the operator's overrides). */
export interface ChannelRouting {
  interfaceId: string;
  publicationId: string;
  senderRoles: string[];
  receiverRoles: string[];
  /** Receiving roles whose every holder gets every message on the channel ("always" routing). */
  alwaysRoles: string[];
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
