import type { ChannelDefinition } from '../catalogue/catalogue.js';
import type { ChannelOverride } from '../config.js';
import { defaultAlwaysRoles, type ChannelRouting } from '../domain/channel.js';

/** A channel as the pipeline uses it: the catalogue's definition with the operator's overrides applied. */
export interface Channel extends ChannelRouting {
  definition: ChannelDefinition;
}

export function channelRouting(def: ChannelDefinition, override: ChannelOverride | undefined): Channel {
  const receiverRoles = override?.receiverRoles ?? def.receiverRoles;
  return {
    definition: def,
    interfaceId: def.interfaceId,
    publicationId: def.publicationId,
    senderRoles: override?.senderRoles ?? def.senderRoles,
    receiverRoles,
    alwaysRoles: override?.alwaysRoles ?? defaultAlwaysRoles(receiverRoles),
    primaryRouting: def.routingModes.includes('primary'),
  };
}
