import { receivesOn } from '../domain/channel.js';
import type { QueueRef } from '../ports/message-log.js';
import type { Channel } from './channels.js';
import type { Registry } from './registry.js';

/**
 * What happens to messages already queued when the registry or a channel changes (documented in the
 * README, "Participants without outage"):
 *  - a paused channel holds its queues: nothing is delivered and nothing expires until it resumes;
 *  - a suspended recipient's queues are held the same way until an operator reactivates it;
 *  - a rescinded (offboarded) recipient's queues are dead-lettered at once, every sender told by a status
 *    message, the messages kept in the archive;
 *  - a recipient that no longer receives on a channel (its role revoked, or the channel's receiving roles
 *    changed) has that channel's queue dead-lettered the same way: it could no longer configure a webhook
 *    nor pull there, so holding the messages would only let them go stale.
 * A withdrawn channel refuses new messages but drains what it accepted.
 */
export function queueRules(registry: Pick<Registry, 'rescinded' | 'participant' | 'suspended'>, channel: (id: string) => Channel | undefined) {
  return {
    held: (q: QueueRef): boolean => channel(q.channel)?.availability === 'paused' || registry.suspended(q.recipientDipId) !== null,
    undeliverable: (q: QueueRef): string | null => {
      if (registry.rescinded(q.recipientDipId)) return `${q.recipientDipId} was offboarded (rescinded): the message was not delivered`;
      const recipient = registry.participant(q.recipientDipId);
      const c = channel(q.channel);
      // Status messages and in-process consumers have no channel of the catalogue: they never lapse.
      if (!recipient || !c || receivesOn(c, recipient)) return null;
      return `${recipient.dipId} no longer receives on ${c.interfaceId} (holds ${recipient.roles.join(', ') || 'no role'}; receiving: ${c.receiverRoles.join(', ')}): the message was not delivered`;
    },
  };
}
