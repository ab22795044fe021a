import { createHash } from 'node:crypto';
import { DIP_ROLE } from '../catalogue/roles.js';
import { bareEventCode } from '../catalogue/types.js';
import {
  archiveUnreadable,
  consumptionRequestRejected,
  nothingArchived,
  REPLAY_INTERFACE,
  REPLAY_REQUEST_INTERFACE,
  REPLAYED_CONSUMPTION,
  replayedConsumption,
  replayCapacity,
  replayEntitlement,
  REQUEST_REJECTED_EVENT,
  type ReplaySender,
} from '../domain/consumption-replay.js';
import { readHeader, stampWrapper, type DipMessage } from '../domain/message.js';
import { dipDateTime, yyyymmdd } from '../domain/time.js';
import { newTransactionId } from '../domain/transaction-id.js';
import type { Archive } from '../ports/archive.js';
import type { Clock } from '../ports/clock.js';
import { storeFailureKind } from '../ports/errors.js';
import type { Logger } from '../ports/logger.js';
import type { MessageLog, QueueEntry, QueueRef } from '../ports/message-log.js';
import type { Channel } from './channels.js';
import { queuesOf } from './delivery.js';
import { dipMadeBatch, type MadeMessage } from './made-batch.js';
import type { MpanDirectory } from './mpan-directory.js';
import type { LocalConsumer } from './queue-worker.js';

/**
 * The internal recipients whose queues hold the IF-015 requests the DIP answers itself: never a
 * participant (DIP IDs have no '-'), as the MPAN lookup's feed (src/pipeline/mpan-feed.ts). One queue per
 * requester, `DIP-REPLAY-<its DIP ID>`: each queue has its own worker and no queue waits on another, so a
 * data service sending hundreds of requests delays only its own answers, and each requester's are
 * answered in the order it sent them. `DIP-REPLAY` itself held every requester's before (2026-12-05): it
 * is still consumed, so what an earlier version queued there is answered after an upgrade.
 */
export const CONSUMPTION_REPLAY_RECIPIENT = 'DIP-REPLAY';

/** The queue of one requester's IF-015s. */
export function consumptionReplayRecipient(requester: string): string {
  return `${CONSUMPTION_REPLAY_RECIPIENT}-${requester}`;
}

/** Whether a queue holds IF-015s for the replay service (one requester's, or the single queue of earlier versions). */
export function isConsumptionReplayQueue(queue: QueueRef): boolean {
  const r = queue.recipientDipId;
  return queue.channel === REPLAY_REQUEST_INTERFACE && (r === CONSUMPTION_REPLAY_RECIPIENT || r.startsWith(`${CONSUMPTION_REPLAY_RECIPIENT}-`));
}

/** Archived messages read, and IF-016s appended, per step: one batch per page. */
export const CONSUMPTION_REPLAY_PAGE = 200;

/**
 * Requests answered before the queue's position is settled: the worker reads up to 500 entries at a time,
 * and each request may read the archive for seconds (README "Consumption replay"), so the work between
 * settlements (redone, as duplicates, after a stop) and the wait for a stop to take effect stay bounded.
 */
export const CONSUMPTION_REPLAY_BATCH = 10;

/** The channels the DIP consumes itself, and the internal recipient a sender's message goes to: routing names no participant. */
export function dipConsumedRecipient(interfaceId: string, senderDipId: string): string | undefined {
  return interfaceId === REPLAY_REQUEST_INTERFACE ? consumptionReplayRecipient(senderDipId) : undefined;
}

/** The channel the DIP answers a channel it consumes on, when it answers at all: ingest refuses a request it could not answer. */
export function dipAnswerChannel(interfaceId: string): string | undefined {
  return interfaceId === REPLAY_REQUEST_INTERFACE ? REPLAY_INTERFACE : undefined;
}

export interface ConsumptionReplayDeps {
  log: Pick<MessageLog, 'append'>;
  /** Wakes the requesters' IF-016 queues once their answers are durable. */
  notify(queues: QueueRef[]): void;
  archive: Pick<Archive, 'findForMpan'>;
  mpan: Pick<MpanDirectory, 'history'>;
  channel(id: string): Channel | undefined;
  clock: Clock;
  logger: Logger;
  dipId: string;
  environment: string;
}

/**
 * The DIP Replay Service: ingest routes each accepted IF-015 to its requester's queue
 * (consumptionReplayRecipient), and this consumes those queues in process, each in order, with the durability of any queue (src/pipeline/queue-worker.ts:
 * the entries are settled after the consumer returns, and offered again after a pause should it throw).
 * Each request is answered with IF-016s addressed to its sender alone: one per archived consumption
 * message about the MPAN that the sender sent or was sent, or one [ConsumptionRequestRejected] saying why
 * there are none. At most CONSUMPTION_REPLAY_BATCH requests are answered per batch the worker offers.
 *
 * A request handled again (the DIP stopped between the answers' append and the queue's settlement) is
 * answered with the same sender unique references, derived from the request's and each original's
 * transaction IDs: the log refuses the repeats as duplicates and only what was missing is appended.
 */
export function consumptionReplay(deps: ConsumptionReplayDeps): (queue: QueueRef) => LocalConsumer | undefined {
  const consume: LocalConsumer = async (entries) => {
    const taken = entries.slice(0, CONSUMPTION_REPLAY_BATCH);
    for (const entry of taken) {
      const unreadable = await answer(deps, entry);
      if (unreadable !== undefined) return { refused: entry, detail: unreadable };
    }
    return taken.at(-1)?.seq;
  };
  return (queue) => (isConsumptionReplayQueue(queue) ? consume : undefined);
}

/** Answers one request; or says why it can never be answered, the request itself unreadable. */
async function answer(deps: ConsumptionReplayDeps, entry: QueueEntry): Promise<string | undefined> {
  const channel = deps.channel(REPLAY_INTERFACE);
  if (!channel) {
    // Without IF-016 in the catalogue in force no answer can be sent; the request stays archived.
    deps.logger.warn({ transactionId: entry.transactionId }, `IF-015 not answered: ${REPLAY_INTERFACE} is not a channel of this DIP`);
    return undefined;
  }
  let request: DipMessage;
  let h: ReturnType<typeof readHeader>;
  try {
    request = JSON.parse(entry.outbound) as DipMessage;
    h = readHeader(request);
  } catch (err) {
    // The request itself cannot be read (damaged: it was valid when accepted): there is nobody known to
    // answer, and it would fail the same way on every retry, holding the queue's later requests behind
    // it. Refused: the worker dead-letters it, saying why (its sender is told by a status message, an
    // operator sees it among the dead letters and may requeue it once the row is repaired).
    return `the IF-015 could not be read from its queue (${err instanceof Error ? err.message : String(err)}): not answered`;
  }
  const d0 = request.payload.CommonBlock.D0 ?? {};
  const correlationId = typeof d0.initialCorrelationID === 'string' ? d0.initialCorrelationID : h.senderCorrelationId;
  const now = new Date(deps.clock.now());
  const answers = new Answers(deps, channel, entry, { dipId: h.senderDipId, capacity: replayCapacity(channel.receiverRoles, h.senderRoleId) }, correlationId, now);

  try {
    await replay(deps, answers, request, { requester: h.senderDipId, transactionId: entry.transactionId }, h.mpan, now);
  } catch (err) {
    // The store failing (unavailable: paused and tried again; permanent: the queue halted for an operator)
    // is the worker's to handle, as on any queue. Anything else (a row that will not open, a bug) would fail
    // the same way on every retry and hold the requester's later requests behind this one: the request is
    // answered that the archive could not be read, and the queue moves on.
    if (storeFailureKind(err) !== null) throw err;
    deps.logger.error({ err, transactionId: entry.transactionId }, 'IF-015 could not be answered from the archive: rejected');
    await answers.reject(request, archiveUnreadable(h.mpan, answers.appended));
  }
}

async function replay(deps: ConsumptionReplayDeps, answers: Answers, request: DipMessage, asked: { requester: string; transactionId: string }, mpan: string | null, now: Date): Promise<void> {
  const { requester } = asked;
  const entitled = replayEntitlement(requester, mpan, await deps.mpan.history(mpan ?? ''), now.getTime());
  if (!entitled.ok) {
    // Who is appointed is for the operator's log, not the requester's answer.
    if (entitled.detail) deps.logger.info({ transactionId: asked.transactionId, requester, detail: entitled.detail }, 'IF-015 rejected: the requester is not the appointed data service');
    return answers.reject(request, entitled.reason);
  }

  let afterId = 0;
  let sent = 0;
  let unreadable = 0;
  for (;;) {
    // Only what the requester sent or was sent (spec 5.5.11): not another data service's, nor what
    // reached others before the requester was a recipient.
    const page = await deps.archive.findForMpan({ mpan: entitled.mpan, party: requester, channels: Object.keys(REPLAYED_CONSUMPTION), afterId, limit: CONSUMPTION_REPLAY_PAGE });
    if (page.length === 0) break;
    afterId = page.at(-1)!.id;
    const made: MadeMessage[] = [];
    for (const original of page) {
      const archived = parsed(original.outbound);
      if (archived === undefined) {
        // A row that cannot be opened or read (damaged, or sealed with a data key no longer held): counted, and the rest replayed.
        deps.logger.error({ transactionId: original.transactionId }, 'an archived message could not be read for an IF-016 replay');
        unreadable++;
        continue;
      }
      const replay = replayedConsumption(original.channel, archived, answers.sender(original.transactionId));
      if (replay === null) {
        // IF-014 [ConsumptionOnDeEnergisedMPAN] has no IF-016 counterpart; a replayed event code that does
        // not map was archived without its CustomBlock in clear (encrypted for its recipients, pattern 3).
        if ((REPLAYED_CONSUMPTION[original.channel] ?? []).includes(bareEventCode(original.eventCode))) unreadable++;
        continue;
      }
      made.push(answers.made(replay.eventCode, replay.message, true, original.transactionId));
    }
    await answers.append(made);
    sent += made.length;
    // A short page is the last: without an index by MPAN, asking again would read the channels' rows again for nothing.
    if (page.length < CONSUMPTION_REPLAY_PAGE) break;
  }
  if (sent === 0) await answers.reject(request, nothingArchived(entitled.mpan, unreadable));
}

/** An archived copy as JSON, or undefined when it could not be opened (null) or is not JSON (a damaged row). */
function parsed(outbound: string | null): unknown {
  if (outbound === null) return undefined;
  try {
    return JSON.parse(outbound) as unknown;
  } catch {
    return undefined;
  }
}

/** The IF-016s that answer one request: wrapped, referenced and appended as the DIP's own messages. */
class Answers {
  private readonly stamp: string;
  /** How many answers this handling appended (the rejection after a failure says how far it got). */
  appended = 0;

  constructor(
    private readonly deps: ConsumptionReplayDeps,
    private readonly channel: Channel,
    private readonly request: QueueEntry,
    /** Whom the answers go to, and the capacity its copies are made for (replayCapacity). */
    private readonly to: { dipId: string; capacity: string | null },
    private readonly correlationId: string | null,
    private readonly now: Date,
  ) {
    this.stamp = dipDateTime(now);
  }

  /**
   * S1 of the answer replaying `original` (null: the rejection). Its reference follows DT-995's pattern and
   * is the same whenever the request is answered again (the request's receipt date, a hash of both IDs).
   */
  sender(original: string | null): ReplaySender {
    const hash = createHash('sha256').update(`${this.request.transactionId}|${original ?? REQUEST_REJECTED_EVENT}`).digest('hex').slice(0, 32);
    return {
      dipId: this.deps.dipId,
      roleId: DIP_ROLE,
      environment: this.deps.environment,
      timestamp: this.stamp,
      senderUniqueReference: `S-${REPLAY_INTERFACE}-${this.deps.dipId.slice(0, 10)}-${DIP_ROLE}-${yyyymmdd(new Date(this.request.receivedAt))}-${hash}`,
      correlationId: this.correlationId,
    };
  }

  /**
   * One answer, wrapped: addressed to the requester alone; replayIndicator true on replayed consumption
   * (spec 5.5.4/5.5.11: a replayed message is marked so that downstream processes are not triggered as by
   * live data; its transaction ID takes the 'R' prefix), false on the DIP's own rejection.
   */
  made(eventCode: string, message: DipMessage, replayed: boolean, original: string | null): MadeMessage {
    const transactionId = newTransactionId(REPLAY_INTERFACE, this.deps.dipId.slice(0, 10), DIP_ROLE, this.now, replayed);
    const outbound = stampWrapper(message, {
      transactionId,
      transactionTimestamp: this.stamp,
      publicationId: this.channel.publicationId,
      initialCorrelationId: this.correlationId,
      replayIndicator: replayed,
      primaryRecipients: [this.to.dipId],
      secondaryRecipients: [],
      alwaysRecipients: [],
    });
    return {
      transactionId,
      eventCode: `[${eventCode}]`,
      correlationId: this.correlationId,
      outbound: JSON.stringify(outbound),
      recipients: [this.to.dipId],
      ...(this.to.capacity === null ? {} : { capacities: Object.fromEntries([[this.to.dipId, this.to.capacity]]) }),
      senderUniqueReference: this.sender(original).senderUniqueReference,
    };
  }

  async reject(request: DipMessage, reason: string): Promise<void> {
    await this.append([this.made(REQUEST_REJECTED_EVENT, consumptionRequestRejected(request, this.sender(null), reason), false, null)]);
  }

  /** Appends the answers; those the log already holds (the request handled before) are left out. */
  async append(made: MadeMessage[]): Promise<void> {
    let left = made;
    while (left.length > 0) {
      const batch = dipMadeBatch(
        // The request kept with the answers (the evidence of what they answer) is the IF-015 as the DIP archived it.
        { channel: REPLAY_INTERFACE, senderDipId: this.deps.dipId, senderRole: DIP_ROLE, at: this.now.getTime(), rawRequest: Buffer.from(this.request.outbound), inForce: this.channel.securityPattern },
        left,
      );
      const outcome = await this.deps.log.append(batch);
      if (outcome.ok) {
        this.appended += left.length;
        this.deps.notify(queuesOf(batch));
        return;
      }
      const duplicates = new Set(outcome.duplicates);
      const rest = left.filter((m) => !duplicates.has(m.senderUniqueReference ?? ''));
      if (rest.length === left.length) throw new Error(`the log refused a replay batch for ${this.request.transactionId} naming no duplicate of it`);
      left = rest;
    }
  }
}
