import type { SecurityPattern } from '../domain/channel.js';
import type { AcceptedBatch } from '../ports/message-log.js';

/** What differs between the messages of a batch the DIP makes (see dipMadeBatch). */
export interface MadeMessage {
  transactionId: string;
  eventCode: string;
  correlationId: string | null;
  /** The outbound copy, serialised: exactly the bytes recipients get. */
  outbound: string;
  recipients: string[];
  /** The capacity each recipient is sent it in (AcceptedMessage.capacities); absent: all its receiving roles. */
  capacities?: Readonly<Record<string, string>>;
  /**
   * For a batch the DIP may make twice (a publication's notice, made again after a crash that may have
   * come after it was appended): the log refuses the second as a duplicate. Absent: none.
   */
  senderUniqueReference?: string;
}

/**
 * A batch the DIP makes itself instead of receiving it signed (status messages, the DIP's own test
 * messages, publication notices), appended as ingest appends a received one so it takes the same road.
 * One place for what such a batch is: no signature (`{}`, as AcceptedBatch.signatureHeaders says), no
 * sender reference unless a message names one (nothing to de-duplicate, so the log never refuses it as a
 * duplicate), no MPAN to index; every message from one sender, in one role, on one channel, at one time.
 * `inForce` is the pattern the channel runs (1 for status messages, which have no catalogue channel):
 * each message records the pattern its copies are made for (src/pipeline/recipient-copy.ts copyPattern).
 * The DIP holds what it makes in clear, so on a channel at 2 or 3 that is 2, encrypted by the DIP for the
 * recipient: as the sender it has no per-recipient copies (3) to give, and must not give it in clear.
 */
export function dipMadeBatch(from: { channel: string; senderDipId: string; senderRole: string; at: number; rawRequest: Buffer; inForce: SecurityPattern }, messages: MadeMessage[]): AcceptedBatch {
  const securityPattern: SecurityPattern = from.inForce === 1 ? 1 : 2;
  return {
    channel: from.channel,
    senderDipId: from.senderDipId,
    receivedAt: from.at,
    rawRequest: from.rawRequest,
    signatureHeaders: '{}',
    messages: messages.map((m) => ({
      transactionId: m.transactionId,
      channel: from.channel,
      eventCode: m.eventCode,
      senderDipId: from.senderDipId,
      senderRole: from.senderRole,
      senderUniqueReference: m.senderUniqueReference ?? null,
      correlationId: m.correlationId,
      mpan: null,
      receivedAt: from.at,
      outbound: m.outbound,
      recipients: m.recipients,
      ...(m.capacities ? { capacities: m.capacities } : {}),
      securityPattern,
    })),
  };
}
