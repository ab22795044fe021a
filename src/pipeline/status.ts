import type { ResponseEntry } from '../domain/standard-response.js';
import { clipHelp } from '../domain/standard-response.js';
import { dipDateTime } from '../domain/time.js';
import { newTransactionId } from '../domain/transaction-id.js';
import type { AcceptedMessage, MessageLog, QueueRef } from '../ports/store.js';

/**
 * Status messages ("Return to Sender", spec 5.5.9 and 5.5.13 D/E) travel on their own queue per
 * participant: the same FIFO queues, delivery workers and webhooks as business messages, under this
 * channel name. A participant sets the webhook with POST /statusmessage/config/{recipient-id}.
 */
export const STATUS_CHANNEL = 'STATUS';

/** A status entry as it arrives: the published StandardResponseBodyType, keys in the spec's case. */
export type StatusEntry = Omit<ResponseEntry, 'message'> & { message: string | null };

export type StatusOutcome = { ok: true; queues: QueueRef[] } | { ok: false; status: number; index: number; help: string };

export class StatusMessages {
  constructor(
    private readonly log: Pick<MessageLog, 'append' | 'transactionParties'>,
    private readonly dipId: string,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /**
   * POST /statusmessage from a recipient: each entry names a transaction the caller received, and goes
   * to that transaction's sender. Accepted or refused whole, like a message batch.
   */
  async fromRecipient(callerDipId: string, entries: StatusEntry[], mayActAs: (dipId: string) => boolean = (id) => id === callerDipId): Promise<StatusOutcome> {
    const routed: Array<{ entry: StatusEntry; to: string }> = [];
    for (const [index, entry] of entries.entries()) {
      if (entry.transactionID === null) {
        return { ok: false, status: 400, index, help: `item ${index}: transactionID is required to route a status message back to its sender` };
      }
      // senderID is the caller, or a participant the caller connects for as its connection provider.
      if (!mayActAs(entry.senderID)) {
        return { ok: false, status: 403, index, help: `item ${index}: senderID ${entry.senderID} is not the caller ${callerDipId}` };
      }
      const parties = await this.log.transactionParties(entry.transactionID);
      if (!parties || !parties.recipients.includes(entry.senderID)) {
        // The same answer whether the transaction does not exist or is someone else's: nothing leaks.
        return { ok: false, status: 400, index, help: `item ${index}: transactionID ${entry.transactionID} is not a message ${entry.senderID} received` };
      }
      routed.push({ entry: { ...entry, recipientID: parties.senderDipId }, to: parties.senderDipId });
    }
    return { ok: true, queues: await this.append(callerDipId, routed) };
  }

  /** A status message the DIP itself raises (a recipient refused a message, or it went stale). */
  async fromDip(originalTransactionId: string, message: string, help: string): Promise<QueueRef[]> {
    const parties = await this.log.transactionParties(originalTransactionId);
    if (!parties || parties.channel === STATUS_CHANNEL) return []; // never a status about a status
    const now = this.clock();
    const entry: StatusEntry = {
      transactionID: originalTransactionId,
      // The sender's own reference and workflow, so its system can match the report without a lookup.
      senderUniqueReference: parties.senderUniqueReference,
      correlationID: parties.correlationId,
      sentTimestamp: dipDateTime(now),
      senderID: this.dipId,
      recipientID: parties.senderDipId,
      DIPConnectionProviderID: null,
      message,
      help: clipHelp(help),
      serviceTicketURL: null,
    };
    return this.append(this.dipId, [{ entry, to: parties.senderDipId }]);
  }

  private async append(from: string, routed: Array<{ entry: StatusEntry; to: string }>): Promise<QueueRef[]> {
    const now = this.clock();
    const messages: AcceptedMessage[] = routed.map(({ entry, to }) => ({
      transactionId: newTransactionId(STATUS_CHANNEL, from.slice(0, 10), 'STS', now),
      channel: STATUS_CHANNEL,
      eventCode: entry.message ?? '',
      senderDipId: from,
      senderRole: 'STS',
      senderUniqueReference: null,
      correlationId: entry.correlationID,
      mpan: null,
      receivedAt: now.getTime(),
      outbound: JSON.stringify(entry),
      recipients: [to],
    }));
    const body = Buffer.from(JSON.stringify(routed.map((r) => r.entry)));
    const outcome = await this.log.append({ channel: STATUS_CHANNEL, senderDipId: from, receivedAt: now.getTime(), rawRequest: body, signatureHeaders: '{}', messages });
    if (!outcome.ok) throw new Error('status messages carry no sender reference and cannot be duplicates');
    return [...new Set(routed.map((r) => r.to))].map((to) => ({ recipientDipId: to, channel: STATUS_CHANNEL }));
  }
}
