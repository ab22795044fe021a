import type { ResponseEntry } from '../domain/standard-response.js';
import { clipHelp } from '../domain/standard-response.js';
import { MSG, type MsgText } from '../domain/response-codes.js';
import { dipDateTime, sentTimeProblem } from '../domain/time.js';
import { newTransactionId, replayCorrelationId } from '../domain/transaction-id.js';
import type { Archive, TransactionParties } from '../ports/archive.js';
import type { Clock } from '../ports/clock.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { AcceptedBatch, MessageLog, QueueRef } from '../ports/message-log.js';
import { queuesOf } from './delivery.js';
import { dipMadeBatch, type MadeMessage } from './made-batch.js';

/**
 * Status messages ("Return to Sender", spec 5.5.9 and 5.5.13 D/E) travel on their own queue per
 * participant: the same FIFO queues, delivery workers and webhooks as business messages, under this
 * channel name. A participant sets the webhook with POST /statusmessage/config/{recipient-id}.
 */
export const STATUS_CHANNEL = 'STATUS';

/** A status entry as it arrives: the published StandardResponseBodyType, keys in the spec's case. */
export type StatusEntry = Omit<ResponseEntry, 'message'> & { message: string | null };

/** Why one entry of a batch of status messages is refused. */
export interface StatusRefusal {
  status: number;
  code: MsgText;
  help: string;
}

/**
 * Accepted, or refused whole: `refusals` has one place per entry, null for an entry that was right.
 * Accepted, `notes` has one place per entry: what the DIP set right in it before relaying it, or null;
 * `toOperator`: the places of entries about a message the DIP itself sent, journalled for its operator.
 */
export type StatusOutcome = { ok: true; queues: QueueRef[]; notes: Array<string | null>; toOperator: number[] } | { ok: false; status: number; refusals: Array<StatusRefusal | null> };

/** The operator journal's action for a recipient's status message about a message the DIP sent. */
export const ABOUT_DIP_MESSAGE = 'status-message.about-dip-message';

/** The free-text fields a recipient writes and the DIP relays to the sender's systems (and its pages). */
const FREE_TEXT = ['message', 'help', 'serviceTicketURL'] as const;

/** A C0 or C1 control character or DEL: a line break that splits a sender's log line, an escape for its terminal. */
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

export interface StatusSettings {
  dipId: string;
  /** How far ahead of the DIP's clock a sentTimestamp may be (the senderTimestamp of a message's, too). */
  maxClockSkewMs: number;
  /**
   * The DIP Connection Provider a participant nominated, or null: a status message's
   * DIPConnectionProviderID is its physical recipient when that is not recipientID (published
   * StandardResponseBodyType), as in the answer to a submission.
   */
  connectionProviderOf: (dipId: string) => string | null;
}

/** A status the DIP raises about one of a sender's transactions (a recipient refused it, or it went stale). */
export interface DipNotice {
  transactionId: string;
  message: string;
  help: string;
}

export class StatusMessages {
  constructor(
    private readonly log: Pick<MessageLog, 'append'>,
    private readonly archive: Pick<Archive, 'transactionParties'>,
    private readonly settings: StatusSettings,
    private readonly clock: Clock,
    private readonly journal: Pick<OperatorJournal, 'append'>,
  ) {}

  /**
   * POST /statusmessage from a recipient: each entry names a transaction the caller received, and goes
   * to that transaction's sender. Accepted or refused whole, like a message batch.
   */
  async fromRecipient(callerDipId: string, entries: StatusEntry[], mayActAs: (dipId: string) => boolean = (id) => id === callerDipId): Promise<StatusOutcome> {
    const routed: Array<{ entry: StatusEntry; to: string; note: string | null; index: number }> = [];
    const refusals: Array<StatusRefusal | null> = [];
    const now = new Date(this.clock.now());
    // Every entry is checked, so that the answer to a batch refused whole names each one at fault, as the
    // answer to a batch of messages does (README, "Answers to a submission").
    const seen = new Map<string, number>();
    for (const [index, entry] of entries.entries()) {
      const first = repeated(seen, entry, index);
      if (first !== undefined) {
        refusals.push({ status: 400, code: MSG.duplicateReference, help: `item ${index}: the same status as item ${first} (transactionID ${entry.transactionID ?? 'null'}, message ${entry.message ?? 'null'}): a batch carries each status once` });
        continue;
      }
      const checked = await this.route(callerDipId, entry, index, now, mayActAs);
      refusals.push('refusal' in checked ? checked.refusal : null);
      if ('to' in checked) routed.push({ ...checked, index });
    }
    const first = refusals.find((r) => r !== null);
    if (first) return { ok: false, status: first.status, refusals };
    // About a message the DIP itself sent (a test message, an IF-016 answer or rejection): the DIP is its
    // sender, and its operator the one to tell. Journalled for the operator, not queued for the DIP's own
    // DIP ID, a queue nothing reads.
    const toOperator = routed.filter((r) => r.to === this.settings.dipId);
    for (const { entry } of toOperator) {
      await this.journal.append({ at: now.getTime(), actor: `participant:${callerDipId}`, action: ABOUT_DIP_MESSAGE, target: entry.transactionID ?? '', before: null, after: entry, status: null });
    }
    const toSenders = routed.filter((r) => r.to !== this.settings.dipId);
    if (toSenders.length === 0) return { ok: true, queues: [], notes: routed.map((r) => r.note), toOperator: toOperator.map((r) => r.index) };
    const batch = this.batch(callerDipId, toSenders);
    const outcome = await this.log.append(batch);
    if (!outcome.ok) throw new Error('status messages carry no sender reference and cannot be duplicates');
    return { ok: true, queues: queuesOf(batch), notes: routed.map((r) => r.note), toOperator: toOperator.map((r) => r.index) };
  }

  /** One entry of POST /statusmessage: the status message to route to its transaction's sender, or why it is refused. */
  private async route(
    callerDipId: string,
    entry: StatusEntry,
    index: number,
    now: Date,
    mayActAs: (dipId: string) => boolean,
  ): Promise<{ entry: StatusEntry; to: string; note: string | null } | { refusal: StatusRefusal }> {
    if (entry.transactionID === null) {
      return { refusal: { status: 400, code: MSG.routingError, help: `item ${index}: transactionID is required to route a status message back to its sender` } };
    }
    // The schema bounds their lengths (message 200, help 500, serviceTicketURL 250: the published types).
    for (const field of FREE_TEXT) {
      const at = entry[field]?.search(CONTROL_CHARACTER) ?? -1;
      if (at !== -1) {
        const code = entry[field]!.charCodeAt(at).toString(16).toUpperCase().padStart(4, '0');
        return { refusal: { status: 400, code: MSG.schemaFailure, help: `item ${index}: ${field} must not contain control characters (U+${code} at character ${at + 1}): it is relayed to the sender's systems as text, on one line` } };
      }
    }
    // senderID is the caller, or a participant the caller connects for as its connection provider.
    if (!mayActAs(entry.senderID)) {
      return { refusal: { status: 403, code: MSG.senderDipIdInvalid, help: `item ${index}: senderID ${entry.senderID} is not the caller ${callerDipId}` } };
    }
    // The schema checks its length only: read as a message's senderTimestamp is.
    const sentProblem = sentTimeProblem(`item ${index}: sentTimestamp`, entry.sentTimestamp, now, this.settings.maxClockSkewMs);
    if (sentProblem) return { refusal: { status: 400, code: MSG.senderTimestampInvalid, help: sentProblem } };
    const parties = await this.archive.transactionParties(entry.transactionID);
    if (!parties || !parties.recipients.includes(entry.senderID)) {
      // The same answer whether the transaction does not exist or is someone else's: nothing leaks.
      return { refusal: { status: 400, code: MSG.routingError, help: `item ${index}: transactionID ${entry.transactionID} is not a message ${entry.senderID} received` } };
    }
    // Both say who gets it, which the DIP knows and the caller may not: not taken from the caller.
    // senderUniqueReference is the one the transaction's sender gave it, always: in the published
    // StandardResponseBodyType it names the sender's message an entry is about (as in the DIP's answer to a
    // submission and its own status messages), and the sender's system files the report under it. Another
    // value (the recipient's own reference, or another of the sender's) would misfile it; the DIP knows the
    // right one, so it is set right, not refused (an adapter that fills the required field with its own
    // reference keeps working), and the caller's 201 says so. The workflow a recipient left out is the
    // transaction's too; one it names is its to give (a workflow of its own), and kept.
    const own = parties.senderUniqueReference;
    const note = entry.senderUniqueReference === null || entry.senderUniqueReference === own ? null : `senderUniqueReference relayed to ${parties.senderDipId} as ${entry.transactionID}'s own (${own ?? 'none'}), not '${entry.senderUniqueReference}': it names the sender's message the status is about`;
    const filled = {
      ...entry,
      senderUniqueReference: own,
      correlationID: entry.correlationID ?? parties.correlationId,
      recipientID: parties.senderDipId,
      DIPConnectionProviderID: this.settings.connectionProviderOf(parties.senderDipId),
      ...aboutOriginal(entry.transactionID, parties, entry),
    };
    return { entry: filled, to: parties.senderDipId, note };
  }

  /**
   * The status messages the DIP raises, as a batch the caller appends (in the same settlement that sets
   * the messages aside). Undefined when none applies: an unknown transaction, or a status about a status.
   */
  async fromDip(notices: DipNotice[]): Promise<AcceptedBatch | undefined> {
    const now = this.clock.now();
    const routed: Array<{ entry: StatusEntry; to: string }> = [];
    for (const n of notices) {
      const parties = await this.archive.transactionParties(n.transactionId);
      // A status message set aside is not reported: return to sender "only reports when a processing thread
      // terminates due to data or processing problems" (spec 5.5.9) of a message, and a status message is
      // that report. Reported, it would go to the status message's own sender (the DIP, or a participant
      // that posted it, whose automated answer could start a status back and forth). The dead letter stays
      // on the operator's list (test flow-features).
      // Nor is one about a message the DIP sent itself (a recipient refused its test message or IF-016
      // answer): it would go to the DIP's own STATUS queue, which nothing reads; the dead letter is the
      // operator's report.
      if (!parties || parties.channel === STATUS_CHANNEL || parties.senderDipId === this.settings.dipId) continue;
      routed.push({
        to: parties.senderDipId,
        entry: {
          transactionID: n.transactionId,
          // The sender's own reference and workflow, so its system can match the report without a lookup.
          senderUniqueReference: parties.senderUniqueReference,
          correlationID: parties.correlationId,
          sentTimestamp: dipDateTime(new Date(now)),
          senderID: this.settings.dipId,
          recipientID: parties.senderDipId,
          DIPConnectionProviderID: this.settings.connectionProviderOf(parties.senderDipId),
          message: n.message,
          help: clipHelp(n.help),
          serviceTicketURL: null,
          ...aboutOriginal(n.transactionId, parties, { correlationID: null, help: n.help }),
        },
      });
    }
    return routed.length === 0 ? undefined : this.batch(this.settings.dipId, routed);
  }

  private batch(from: string, routed: Array<{ entry: StatusEntry; to: string }>): AcceptedBatch {
    const now = new Date(this.clock.now());
    const messages: MadeMessage[] = routed.map(({ entry, to }) => ({
      transactionId: newTransactionId(STATUS_CHANNEL, from.slice(0, 10), 'STS', now),
      eventCode: entry.message ?? '',
      correlationId: entry.correlationID,
      outbound: JSON.stringify(entry),
      recipients: [to],
    }));
    const body = Buffer.from(JSON.stringify(routed.map((r) => r.entry)));
    return dipMadeBatch({ channel: STATUS_CHANNEL, senderDipId: from, senderRole: 'STS', at: now.getTime(), rawRequest: body, inForce: 1 }, messages);
  }
}

/**
 * The place of the first entry of the batch that tells the same as this one, or undefined (recorded then).
 * A batch of messages naming one senderUniqueReference twice is refused whole (MSG1006, ingest): so is a
 * batch of statuses carrying one twice, which would be relayed to the sender as many times. A status is
 * who tells the sender what about which transaction: senderID, transactionID, message, help and
 * serviceTicketURL (its reference is the transaction's own, set by the DIP; the time it was written and the
 * fields the DIP fills do not make another status). Two statuses about one transaction that say different
 * things pass, and so do two recipients' (a connection provider's clients) saying the same.
 */
function repeated(seen: Map<string, number>, entry: StatusEntry, index: number): number | undefined {
  const key = JSON.stringify([entry.senderID, entry.transactionID, entry.message, entry.help, entry.serviceTicketURL]);
  const first = seen.get(key);
  if (first === undefined) seen.set(key, index);
  return first;
}

/**
 * A status message about a replayed or requeued copy (an R- transaction) as its sender reads it: about the
 * original transaction it sent (the only ID it knows), in the original's workflow (an R-prefixed
 * correlation ID the recipient copied from the copy is the replay's, which the sender never saw either;
 * one of its own choosing is kept), with the copy's ID at the head of the help, the field the published
 * StandardResponseBodyType leaves free for text. Nothing changes for any other transaction.
 */
function aboutOriginal(
  transactionId: string,
  parties: Pick<TransactionParties, 'replayOf' | 'correlationId'>,
  said: { correlationID: string | null; help: string | null },
): Partial<Pick<StatusEntry, 'transactionID' | 'correlationID' | 'help'>> {
  if (parties.replayOf === null) return {};
  const replayed = said.correlationID === null || said.correlationID === replayCorrelationId(parties.correlationId);
  const note = `about the replayed copy ${transactionId} of ${parties.replayOf}`;
  return {
    transactionID: parties.replayOf,
    correlationID: replayed ? parties.correlationId : said.correlationID,
    help: clipHelp(said.help === null ? note : `${note}: ${said.help}`),
  };
}
