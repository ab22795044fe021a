import { changesFromMessage } from '../domain/mpan-lookup.js';
import type { DipMessage } from '../domain/message.js';
import type { QueueRef } from '../ports/message-log.js';
import type { LocalConsumer } from './queue-worker.js';
import type { MpanDirectory } from './mpan-directory.js';

/** The internal recipient whose queue feeds the MPAN lookup: never a participant (DIP IDs have no '-'). */
export const MPAN_LOOKUP_RECIPIENT = 'DIP-MPAN-LOOKUP';

/**
 * The MPAN lookup is maintained from the registration channels' own messages (spec 5.5.14): ingest
 * routes each such message to this internal recipient too, and its queue is consumed in process, in
 * order, with the same durability and restart behaviour as any recipient's.
 */
export function mpanFeed(mpan: Pick<MpanDirectory, 'apply'>): (queue: QueueRef) => LocalConsumer | undefined {
  const consume: LocalConsumer = async (entries) => mpan.apply(entries.flatMap((e) => changesFromMessage(JSON.parse(e.outbound) as DipMessage)));
  return (queue) => (queue.recipientDipId === MPAN_LOOKUP_RECIPIENT ? consume : undefined);
}
