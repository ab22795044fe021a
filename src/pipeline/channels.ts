import type { ChannelDefinition } from '../catalogue/catalogue.js';
import type { ChannelOverride } from '../config.js';
import { defaultAlwaysRoles, type ChannelRouting } from '../domain/channel.js';
import type { ObfuscationRules } from '../domain/obfuscation.js';

/** A channel as the pipeline uses it: the catalogue's definition with the operator's overrides applied. */
export interface Channel extends ChannelRouting {
  definition: ChannelDefinition;
  workflowStarter: boolean;
  staleAfterMs: number;
  obfuscation: ObfuscationRules;
}

/**
 * Requests that open a workflow answered on other channels (appointment, MPAN relationship, supplier
 * maintained data, consumption amendment, direct contract, consumption replay): the DIP gives each a
 * workflow correlation ID. OpenDIP's reading of spec 5.5.5, not a published list; operators can change it.
 */
export const DEFAULT_WORKFLOW_STARTERS = new Set(['IF-015', 'IF-019', 'IF-025', 'IF-027', 'IF-031', 'IF-038']);

export function channelRouting(def: ChannelDefinition, override: ChannelOverride | undefined, defaultStaleMs: number): Channel {
  const receiverRoles = override?.receiverRoles ?? def.receiverRoles;
  return {
    definition: def,
    interfaceId: def.interfaceId,
    publicationId: def.publicationId,
    senderRoles: override?.senderRoles ?? def.senderRoles,
    receiverRoles,
    alwaysRoles: override?.alwaysRoles ?? defaultAlwaysRoles(receiverRoles),
    primaryRouting: def.routingModes.includes('primary'),
    workflowStarter: override?.workflowStarter ?? DEFAULT_WORKFLOW_STARTERS.has(def.interfaceId),
    staleAfterMs: override?.staleAfterMinutes !== undefined ? override.staleAfterMinutes * 60_000 : defaultStaleMs,
    obfuscation: override?.obfuscation ?? {},
  };
}
