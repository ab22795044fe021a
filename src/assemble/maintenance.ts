import { receivesOn } from '../domain/channel.js';
import type { ChannelDirectory } from '../pipeline/channels.js';
import { Maintenance } from '../pipeline/maintenance.js';
import type { Registry } from '../pipeline/registry.js';
import type { AlarmChannel, AlarmSubscriptionStore } from '../ports/alarms.js';
import type { Backend } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';

/**
 * Maintenance notices (spec 5.13.5), told to the subscriptions that name `maintenance` through the
 * alarms' e-mail and webhook channel (none when alarms are off: the notices are then on the API only).
 */
export function assembleMaintenance(
  backend: Backend,
  registry: Registry,
  channels: Pick<ChannelDirectory, 'all' | 'get'>,
  alarms: { subscriptions: AlarmSubscriptionStore; channel: AlarmChannel } | null,
  clock: Clock,
  logger: Logger,
): Maintenance {
  return new Maintenance({
    store: backend.maintenance,
    outbox: backend.maintenanceSends,
    journal: backend.journal,
    clock,
    logger,
    knownChannel: (id) => channels.get(id) !== undefined,
    channelsOf: (dipId) => {
      const p = registry.participant(dipId);
      if (!p) return new Set<string>();
      return new Set(channels.all().filter((ch) => receivesOn(ch, p) || p.roles.some((r) => ch.senderRoles.includes(r))).map((ch) => ch.interfaceId));
    },
    contacts: () => registry.maintenanceContacts(),
    ...(alarms ? { announce: { subscriptions: () => alarms.subscriptions.list(), channel: alarms.channel } } : {}),
  });
}
