import type { DipMessage } from '../domain/message.js';
import { dipDateTime } from '../domain/time.js';
import { newTransactionId } from '../domain/transaction-id.js';
import type { MessageLog, QueueRef, ReplayCopy } from '../ports/store.js';
import type { RecipientCopies } from './recipient-copy.js';

export interface ReplayFilter {
  fromMs: number;
  toMs: number;
  eventCode: string | null;
  mpan: string | null;
  transactionIds: string[] | null;
}

/** Replays are synchronous answers: bounded so one request cannot pull the whole archive into memory. */
export const REPLAY_LIMIT = 1000;

/**
 * Replay and requeue (spec 5.5.11): archived messages addressed to the recipient, each re-issued under
 * a new transaction wrapper (new 'R-' transaction ID, replayIndicator true) and archived as a copy.
 * A requeue also appends the copies to the recipient's queue, behind whatever is already waiting.
 */
export class Replay {
  constructor(
    private readonly log: Pick<MessageLog, 'findArchived' | 'appendReplayCopies'>,
    /** What the recipient may see of each copy: a synchronous replay answers exactly what its webhook gets. */
    private readonly copies: Pick<RecipientCopies, 'copyFor'>,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /**
   * Re-issues the matching archived messages. Returns the recipient's own copies (obfuscated, encrypted
   * for it) for a synchronous answer; a requeue's copies reach it through delivery, which makes the same.
   */
  async run(queue: QueueRef, filter: ReplayFilter, requeue: boolean): Promise<string[]> {
    const found = await this.log.findArchived({
      recipientDipId: queue.recipientDipId,
      channel: queue.channel,
      fromMs: filter.fromMs,
      toMs: filter.toMs,
      eventCode: filter.eventCode === null ? undefined : bracketed(filter.eventCode),
      mpan: filter.mpan ?? undefined,
      transactionIds: filter.transactionIds ?? undefined,
      limit: REPLAY_LIMIT,
    });
    const now = this.clock();
    const copies: ReplayCopy[] = found.map((m) => {
      const message = JSON.parse(m.outbound) as DipMessage;
      const d0 = message.payload.CommonBlock.D0 ?? {};
      d0.transactionID = newTransactionId(m.channel, m.senderDipId, m.senderRole, now, true);
      d0.transactionTimestamp = dipDateTime(now);
      d0.replayIndicator = true;
      message.payload.CommonBlock.D0 = d0;
      return { originalId: m.id, transactionId: String(d0.transactionID), receivedAt: now.getTime(), outbound: JSON.stringify(message) };
    });
    if (copies.length > 0) await this.log.appendReplayCopies(copies, requeue ? queue : undefined);
    return Promise.all(copies.map((c) => this.copies.copyFor(queue, c.outbound)));
  }
}

/** Event codes travel as "[ActivePower]"; a filter may name them with or without the brackets. */
function bracketed(code: string): string {
  return code.startsWith('[') ? code : `[${code}]`;
}
