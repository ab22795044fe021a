import type { Catalogue, ValidationIssue } from '../catalogue/catalogue.js';
import { ENCRYPTED_BLOCKS, openPattern2, splitPattern3, type Prepared } from './patterns.js';
import type { DecryptionKey } from '../security/payload-encryption.js';
import { canonicalCustomBlocks, type Span } from '../domain/canonical-json.js';
import { readHeader, serialiseOutbound, stampWrapper, type DipMessage, type MessageHeader } from '../domain/message.js';
import type { Participant } from '../domain/participant.js';
import { MSG, schemaFailureCode, type MsgText } from '../domain/response-codes.js';
import { addressingDate, secondaryRecipients, type Appointment } from '../domain/mpan-lookup.js';
import { route, routeToDip } from '../domain/routing.js';
import { batchTooLargeHelp, HELP_MAX, refusedWholeHelp, standardResponse, type EntryFields, type StandardResponse } from '../domain/standard-response.js';
import { dipDateTime, sentTimeProblem } from '../domain/time.js';
import { newCorrelationId, newTransactionId } from '../domain/transaction-id.js';
import { COMMIT_IN_DOUBT, storeFailureKind, StoreError } from '../ports/errors.js';
import type { AcceptedBatch, AcceptedMessage, AppendOutcome } from '../ports/message-log.js';
import { MPAN_LOOKUP_RECIPIENT } from './mpan-feed.js';
import { dipAnswerChannel, dipConsumedRecipient } from './consumption-replay.js';
import { authenticate, type CallerEvidence } from './authenticate.js';
import type { Channel } from './channels.js';
import type { SignatureDate } from './clock-check.js';
import type { MpanDirectory } from './mpan-directory.js';
import type { Registry } from './registry.js';
import type { MessageTracer } from '../ports/tracing.js';
import { firstDuplicateName, memberCount, nameGivenTwice, scanJsonBatch, type ItemSpan, type JsonCounts } from '../security/json-depth.js';
import { alteredNumberHelp, firstAlteredNumber, hasAlteredNumber } from '../security/json-numbers.js';
import { firstLoneSurrogate, hasSurrogateEscape, loneSurrogateHelp } from '../security/json-strings.js';


/**
 * Where a submission's batch is appended: the store, or (on an ingest thread) the main thread's writer.
 * `accepted` is what the submission answers should the append accept the batch. A writer that holds the
 * request (the main thread, for an ingest thread) answers it with that the moment the batch is durable,
 * rather than after the outcome has crossed back to the thread and the thread's answer has crossed again:
 * two hops, each behind whatever else that thread's queue held (1-3 ms at p50 and 5-15 ms at p90 at
 * 2,000 msg/s, BENCHMARKS.md). The store itself ignores it.
 */
export interface IngestLog {
  append(batch: AcceptedBatch, accepted?: IngestResult): Promise<AppendOutcome>;
}
export interface IngestSettings {
  dipId: string;
  environment: string;
  maxClockSkewMs: number;
  maxBatchMessages: number;
  /** Deepest nesting of arrays and objects accepted (checked before parsing; the listener leaves it to this pipeline). */
  maxJsonDepth: number;
  /** Members one object, and values one message, may hold (counted by the same pass, before parsing). */
  jsonCounts: JsonCounts;
}

export interface IngestRequest extends CallerEvidence {
  channelId: string;
  /** How long ago the request arrived (ms): the receive phase of its trace, read only when tracing is on. */
  receivedMsAgo?: number;
}

/** When each phase of one traced POST ended (tracer time), filled in as it goes. */
interface IngestMarks {
  /** The authenticated caller (a connection provider's answer names, per item, the participant it sent for). */
  sender: string | null;
  authenticatedAt: number | null;
  validatedAt: number | null;
  committedAt: number | null;
}

/**
 * The MSG code a refused submission was answered with (`MSG1001`), null when it was accepted: the first
 * failing item's, not the MSG1000 the items beside it are answered with (refuse()); MSG1000 only when
 * that is all there is (a batch refused whole: overload, a paused channel, the store).
 */
export function refusalCode(result: IngestResult): string | null {
  if (result.status === 201) return null;
  const entries = result.response.messageArray;
  const refused = entries.find((e) => e.message !== MSG.success && e.message !== MSG.processingFailed) ?? entries.find((e) => e.message !== MSG.success) ?? entries[0];
  return refused ? refused.message.slice(0, 7) : `HTTP ${result.status}`;
}

/** What a sender is told to wait when the store cannot take writes (the store probes every 2 s). */
export const STORE_RETRY_AFTER_SECONDS = 5;
/** Retry-After of a submission to a paused channel: pauses are for maintenance, measured in minutes. */
export const PAUSED_RETRY_AFTER_SECONDS = 60;

export interface IngestResult {
  status: number;
  response: StandardResponse;
  /** Set with 503 and 429: how long the sender should wait (the Retry-After header). */
  retryAfterSeconds?: number;
  /**
   * Set with 201: each holder the MPAN lookup named who got no copy beside recipients who did, for the
   * operator (counted by dip_mpan_holders_unreached_total, logged by the route). No MPAN: logs carry none.
   */
  unreached?: UnreachedHolder[];
  /**
   * Set with 201: each participant the channel names to always receive who is not registered (MSG1035)
   * and so got no copy of an accepted message: the operator's setting to correct (logged by the route).
   */
  alwaysLeftOut?: Array<{ transactionId: string; dipId: string; code: string }>;
  /**
   * The signature's date as checked against the DIP's clock (Authentication.dated), refused for it or
   * not: an ingest thread checks it, and the main thread's clock check (`dip-clock` alarm) hears of it
   * here. Absent when the call was refused before its date was read.
   */
  dated?: SignatureDate;
}

interface Refusal {
  status: number;
  code: MsgText;
  help: string;
}

/** What is known of one item of the batch so far: enough to answer for it whatever happens next. */
interface ItemState {
  ref: string | null;
  connectionProvider: string | null;
  /** The participant a connection provider sent this item for (S1.senderDIPID, naming the caller as its provider); null when the caller sent for itself. */
  sentFor: string | null;
  refusal: Refusal | null;
  /**
   * The validated message (spec case) and its header, until it is routed; `customBlock`, the sender's
   * own text of its CustomBlock when that is what JSON.stringify would write for it (else null).
   */
  validated: { message: DipMessage; header: MessageHeader; schemaVersion: string; customBlock: string | null } | null;
  accepted: AcceptedMessage | null;
  /** Refused as a duplicate: the transaction ID its reference was accepted under before, when known. */
  original: string | null;
  /**
   * Holders the MPAN lookup named who get no copy while others do (RoutingDecision.unreached): said in the
   * accepted answer's help, and counted by their MSG code (IngestResult.unreached).
   */
  unreached: Array<{ code: MsgText; help: string; holder: string; slot: string }>;
  /** Participants the channel names to always receive who are not registered (RoutingDecision.alwaysLeftOut): said as `unreached` is. */
  alwaysLeftOut: Array<{ code: MsgText; help: string; dipId: string }>;
  /** What the accepted answer's help tells the sender beside the unreached holders (a correlation ID not taken). */
  notes: string[];
}

/** A holder the MPAN lookup named for an accepted message that got no copy (IngestResult.unreached). */
export interface UnreachedHolder {
  transactionId: string;
  holder: string;
  slot: string;
  /** MSG1033 (not a participant) or MSG1034 (without the slot's role). */
  code: string;
}

/**
 * Whom an item's answer entry names (published StandardResponseBodyType): recipientID the "sender of the
 * original event message", DIPConnectionProviderID its "physical recipient (if different to recipient Id)".
 * For an item a connection provider sent for a participant, that participant and the provider.
 */
function answeredFor(s: ItemState): Pick<EntryFields, 'recipientID' | 'DIPConnectionProviderID'> {
  return { ...(s.sentFor ? { recipientID: s.sentFor } : {}), DIPConnectionProviderID: s.connectionProvider };
}

function itemState(ref: string | null): ItemState {
  return { ref, connectionProvider: null, sentFor: null, refusal: null, validated: null, accepted: null, original: null, unreached: [], alwaysLeftOut: [], notes: [] };
}

/** The keys encrypted channels need: the DIP's own (pattern 2 inbound) and what it knows of each recipient's (RecipientCopies). */
export interface PayloadKeys {
  /** The DIP's own: the current key, and the one a rotation replaced while its overlap lasts (src/security/dip-encryption-key.ts). */
  dipKeys(): readonly DecryptionKey[];
  /** The recipient's registered certificate can be encrypted to at all (revoked or expired: still true). */
  encryptable(dipId: string): boolean;
  /** Why pattern 2 copies for it are held now (its certificate revoked or expired), or null. */
  withheld(dipId: string): string | null;
  /** Why a sender may not encrypt to the recipient's registered certificate (revoked, expired), or null (RecipientCopies.senderMustNotEncrypt). */
  senderMustNotEncrypt(dipId: string): string | null;
}

/**
 * POST /dip-channel/{id}: authenticate, validate every item, route, stamp the wrapper, append the whole
 * batch durably, answer. The batch is accepted or refused whole, and a refusal stores nothing.
 */
export class Ingest {
  constructor(
    private readonly settings: IngestSettings,
    private readonly catalogue: Pick<Catalogue, 'validate'>,
    private readonly channels: (id: string) => Channel | undefined,
    private readonly registry: Registry,
    private readonly log: IngestLog,
    private readonly mpan: Pick<MpanDirectory, 'history'>,
    private readonly encryption: PayloadKeys,
    private readonly clock: () => Date = () => new Date(),
    /** OpenTelemetry (off by default: then absent, and nothing is measured or created for it). */
    private readonly tracer?: MessageTracer,
  ) {}

  /** Whether submissions are traced (the route then tells how long ago the request arrived). */
  get traced(): boolean {
    return this.tracer !== undefined;
  }

  async handle(req: IngestRequest): Promise<IngestResult> {
    const tracer = this.tracer;
    if (!tracer) return this.submit(req, null);
    const handledAt = tracer.now();
    const marks: IngestMarks = { sender: null, authenticatedAt: null, validatedAt: null, committedAt: null };
    const result = await this.submit(req, marks);
    tracer.ingested({
      channel: req.channelId,
      status: result.status,
      refusal: refusalCode(result),
      transactionIds: result.status === 201 ? result.response.messageArray.flatMap((e) => (e.transactionID ? [e.transactionID] : [])) : [],
      receivedAt: handledAt - (req.receivedMsAgo ?? 0),
      handledAt,
      ...marks,
      answeredAt: tracer.now(),
    });
    return result;
  }

  private async submit(req: IngestRequest, marks: IngestMarks | null): Promise<IngestResult> {
    const now = this.clock();
    const opened = await this.open(req, now, marks);
    if (!('caller' in opened)) return opened;
    const dated = opened.dated ? { dated: opened.dated } : {};
    try {
      return { ...(await this.accept(req, marks, now, opened.caller, opened.channel, dated)), ...dated };
    } catch (err) {
      // The store could not be read (the MPAN lookup, the registry) or written: nothing of the batch was
      // stored, and the sender may send it again, unchanged, once the store recovers.
      if (storeFailureKind(err) === 'unavailable' || storeFailureKind(err) === 'fatal') return { ...this.unavailable(now, opened.caller.dipId, err as StoreError), ...dated };
      throw err;
    }
  }

  /** `dated` goes into the accepted answer itself: on an ingest thread, the main thread answers with it (IngestCall.accepted). */
  private async accept(req: IngestRequest, marks: IngestMarks | null, now: Date, caller: Participant, channel: Channel, dated: Pick<IngestResult, 'dated'>): Promise<IngestResult> {
    if (marks) marks.authenticatedAt = this.tracer!.now();
    const checked = await this.checkBatch(req, now, caller, channel, null);
    if (!Array.isArray(checked)) return checked;
    const states = checked;
    const failed = states.find((s) => s.refusal !== null);
    if (failed) return this.refuse(now, caller.dipId, states, failed);

    const accepted = states.map((s) => s.accepted!);
    if (marks) marks.validatedAt = this.tracer!.now();
    const answer: IngestResult = {
      status: 201,
      response: standardResponse(
        now,
        this.settings.dipId,
        caller.dipId,
        accepted.map((m, i) => ({
          transactionID: m.transactionId,
          senderUniqueReference: m.senderUniqueReference,
          correlationID: m.correlationId,
          ...answeredFor(states[i]!),
          message: MSG.success,
          help: acceptedHelp(states[i]!),
        })),
      ),
      ...unreachedCodes(states),
      ...alwaysLeftOutCodes(states),
      ...dated,
    };
    const outcome = await this.log.append(
      {
        channel: channel.interfaceId,
        senderDipId: caller.dipId,
        receivedAt: now.getTime(),
        rawRequest: req.body,
        // With the URL it was verified against, the archived request can be verified again (src/pipeline/evidence.ts).
        signatureHeaders: JSON.stringify({ url: req.url, headers: signatureHeaders(req.headers) }),
        messages: accepted,
      },
      // A traced submission is answered here, once its marks are taken.
      marks ? undefined : answer,
    );
    if (marks) marks.committedAt = this.tracer!.now();
    if (!outcome.ok) {
      const dup = new Set(outcome.duplicates);
      for (const [index, s] of states.entries()) {
        if (s.ref !== null && dup.has(s.ref)) {
          // The original's transaction ID, answered with the refusal: a sender resending after a lost 201 learns it.
          s.original = outcome.originals?.[s.ref] ?? null;
          const as = s.original ? `, as transaction ${s.original}` : '';
          s.refusal = { status: 400, code: MSG.duplicateReference, help: `item ${index}: S1.senderUniqueReference ${s.ref} was already accepted from ${caller.dipId}${as}` };
        }
      }
      return this.refuse(now, caller.dipId, states, states.find((s) => s.refusal !== null)!);
    }
    return answer;
  }

  /**
   * Every check of a batch that changes nothing, shared by submission and /validate: the caller may send
   * on the channel; each item's schema (and, for /validate, its event code), its header against the
   * caller (environment tag, sender, connection provider, roles, sender timestamp: checkHeader), its
   * routing (recipients registered and receiving, MPAN lookup, encrypted copies) and references repeated
   * within the batch. What it cannot check without writing, a reference accepted before, is the store's
   * to find when the batch is appended. A batch-wide refusal is answered as an IngestResult.
   */
  private async checkBatch(req: IngestRequest, now: Date, caller: Participant, channel: Channel, eventCode: string | null): Promise<ItemState[] | IngestResult> {
    const sends = (p: Participant) => p.roles.some((r) => channel.senderRoles.includes(r));
    if (!this.registry.identitiesOf(caller).some(sends)) {
      // A provider whose only clients that send here are suspended is told so, not merely that it holds DCP.
      const refused = this.registry
        .refusedNomineesOf(caller)
        .filter((n) => sends(n.participant))
        .map((n) => `; it may not send for ${n.refusal}`)
        .join('');
      return this.whole(
        now,
        caller.dipId,
        403,
        MSG.senderRoleInvalid,
        `${caller.dipId} holds ${caller.roles.join(', ')}; only ${channel.senderRoles.join(', ')} may send on ${channel.interfaceId}${refused}`,
      );
    }

    const batch = parseBatch(req.body, this.settings);
    if (!('items' in batch)) return this.whole(now, caller.dipId, batch.status, MSG.schemaFailure, batch.help);
    const items = batch.items;

    const prepared = await this.prepare(channel, items);
    // Encrypted channels rewrite the payload before validation: nothing of the sender's text to reuse.
    const spans = channel.securityPattern === 1 ? canonicalCustomBlocks(req.body) : [];
    const states = prepared.map((p, index) => {
      // A number the parse altered is refused before anything reads the altered value (see json-numbers.ts).
      const altered = alteredNumberIn(req.body, batch.spans?.[index]);
      if (altered === null && p.ok) return this.check(channel, caller, p.item, index, now, p.copies, sendersText(req.body, items[index], p.item, spans[index]), eventCode);
      const refused = itemState(bestEffortReference(items[index]));
      // Prepared, it is here for its number; not (pattern 2's CustomBlock did not open), for that, or its number first.
      refused.refusal = p.ok ? this.alteredNumberRefusal(channel, p.item, p.copies, altered!, index) : { status: 400, code: MSG.schemaFailure, help: `item ${index}: ${altered ? alteredNumberHelp(altered) : p.help}` };
      return refused;
    });
    // A recipient onboarded a moment ago (perhaps by the CLI, in another process) is known at once.
    if (states.some((s) => s.validated?.header.primaryRecipients.some((id) => !this.registry.participant(id)))) await this.registry.refresh();
    const histories = await this.lookUpMpans(channel, states);
    const stamp = dipDateTime(now);
    states.forEach((s, index) => this.routeItem(channel, s, index, now, stamp, histories));
    markDuplicatesInBatch(states);
    return states;
  }

  /**
   * POST /validate/{interface}/{event} (published "for debugging purposes"): a dry run of submission. Each
   * item goes through the very checks a submission makes before it stores anything (checkBatch: schema,
   * the endpoint's event code, environment tag, sender, connection provider and roles against the caller,
   * sender timestamp, routing, references repeated in the batch), and nothing is stored, routed or
   * reserved. Not checked: whether a sender unique reference was accepted before (only the store's
   * append knows, and a dry run must not reserve it), so a submission may still answer MSG1006.
   * Each item is answered for itself (a valid one as valid even when another is refused), 400 when any is refused.
   */
  async validate(req: IngestRequest & { eventCode: string }): Promise<IngestResult> {
    const now = this.clock();
    const opened = await this.open(req, now);
    if (!('caller' in opened)) return opened;
    const { caller, channel } = opened;
    const event = channel.definition.eventCodes.find((e) => e.toLowerCase() === req.eventCode.toLowerCase());
    if (!event) {
      // The interface ID is valid; the event code is not one of its schema's (DI-999 has no MSG code for an
      // event code, RCP1003 being the recipient's): MSG1001, as a message carrying that event code gets.
      const help = `event code '${req.eventCode}' is not one of ${channel.interfaceId}'s (the path names it): /validate/${channel.interfaceId}/{${channel.definition.eventCodes.join('|')}}`;
      return this.whole(now, caller.dipId, 404, MSG.schemaFailure, help);
    }
    try {
      const checked = await this.checkBatch(req, now, caller, channel, event);
      if (!Array.isArray(checked)) return checked;
      const entries: EntryFields[] = checked.map((s) => {
        if (s.refusal) return { senderUniqueReference: s.ref, ...answeredFor(s), message: s.refusal.code, help: s.refusal.help };
        return {
          senderUniqueReference: s.ref,
          ...answeredFor(s),
          message: MSG.success,
          // Whom it would go to is not said: the MPAN lookup's answer (who was appointed to any MPAN on any
          // date) would be a lookup service for any sender, which a submission's 201 never is.
          help: `valid ${channel.interfaceId} [${event}] (schema ${s.validated!.schemaVersion}); not stored or routed, and S1.senderUniqueReference was not checked against those accepted before nor reserved`,
        };
      });
      const refused = entries.some((e) => e.message !== MSG.success);
      return { status: refused ? 400 : 201, response: standardResponse(now, this.settings.dipId, caller.dipId, entries) };
    } catch (err) {
      if (storeFailureKind(err) === 'unavailable' || storeFailureKind(err) === 'fatal') return this.unavailable(now, caller.dipId, err as StoreError);
      throw err;
    }
  }

  /** What submission and validation share: an authenticated caller and a known channel. */
  private async open(req: IngestRequest, now: Date, marks: IngestMarks | null = null): Promise<{ caller: Participant; channel: Channel; dated?: SignatureDate } | IngestResult> {
    // No replay guard here: a submission is idempotent by its sender unique references (required on every
    // item), so the very same signed request sent again (a retry after a lost answer) is answered for what
    // it carries: MSG1006 for each message stored before, or taken if it was not. Refused as a replay
    // (401), its sender could not tell whether the first one was accepted. Validation stores nothing.
    const auth = await authenticate(this.registry, { ...req, controls: req.controls?.revocation ? { revocation: req.controls.revocation } : {} }, now, this.settings.maxClockSkewMs);
    const dated = auth.dated ? { dated: auth.dated } : {};
    if (!auth.ok) return { ...this.whole(now, null, auth.status, MSG.processingFailed, auth.help), ...dated };
    const caller = auth.participant;
    if (marks) marks.sender = caller.dipId;
    const channel = this.channels(req.channelId);
    if (!channel || channel.availability === 'withdrawn') {
      const why = channel ? 'was withdrawn by the DIP operator' : 'is not a channel of this DIP';
      return { ...this.whole(now, caller.dipId, 404, MSG.interfaceIdInvalid, `dip-channel '${req.channelId}' ${why}`), ...dated };
    }
    if (channel.availability === 'paused') {
      return {
        ...this.whole(now, caller.dipId, 503, MSG.processingFailed, `${channel.interfaceId} is paused by the DIP operator (maintenance); nothing of this batch was accepted: send it again unchanged once the channel resumes. Other channels are not affected`),
        retryAfterSeconds: PAUSED_RETRY_AFTER_SECONDS,
        ...dated,
      };
    }
    // A request the DIP answers itself (IF-015) is refused while its answer's channel is not in force: taken,
    // it would be settled unanswered.
    const answeredOn = dipAnswerChannel(channel.interfaceId);
    const answer = answeredOn === undefined ? undefined : this.channels(answeredOn);
    if (answeredOn !== undefined && (!answer || answer.availability === 'withdrawn')) {
      const why = answer ? 'was withdrawn by the DIP operator' : 'is not a channel of this DIP';
      return { ...this.whole(now, caller.dipId, 404, MSG.interfaceIdInvalid, `${channel.interfaceId} is answered by the DIP on ${answeredOn}, which ${why}: nothing of this batch was accepted`), ...dated };
    }
    return { caller, channel, ...dated };
  }

  /** Security patterns 2 and 3: decrypt (2) or set aside the per-recipient copies (3) before validation. */
  private async prepare(channel: Channel, items: unknown[]): Promise<Prepared[]> {
    if (channel.securityPattern === 2) return Promise.all(items.map((item) => openPattern2(item, this.encryption.dipKeys(), { maxDepth: this.settings.maxJsonDepth, counts: this.settings.jsonCounts })));
    if (channel.securityPattern === 3) return items.map((item) => splitPattern3(item, channel.interfaceId));
    return items.map((item) => ({ ok: true, item, copies: null }));
  }

  private check(
    channel: Channel,
    caller: Participant,
    item: unknown,
    index: number,
    now: Date,
    copies: Record<string, string> | null,
    customBlock: { value: unknown; text: string } | null,
    /** /validate's endpoint event code (bare): an item of another event code is refused. */
    eventCode: string | null = null,
  ): ItemState {
    const state = itemState(null);
    const validated = this.catalogue.validate(channel.interfaceId, item, { encryptedPayload: copies !== null });
    if (!validated.ok) {
      state.ref = bestEffortReference(item);
      const prefix = `item ${index}: `;
      // DI-999's code for the field at fault where it has one (MSG1002 for S0.interfaceID), the help
      // naming every problem as for MSG1001.
      state.refusal = { status: 400, code: schemaFailureCode(validated.paths), help: `${prefix}${describeIssues(validated.errors, validated.count, HELP_MAX - prefix.length)}` };
      return state;
    }
    if (eventCode !== null && validated.eventCode !== eventCode) {
      state.ref = bestEffortReference(item);
      state.refusal = { status: 400, code: MSG.schemaFailure, help: `item ${index}: payload.CommonBlock.S0.eventCode is [${validated.eventCode}]; this endpoint validates [${eventCode}]` };
      return state;
    }
    const message = validated.message as DipMessage;
    if (copies !== null) (message.payload as Record<string, unknown>)[ENCRYPTED_BLOCKS] = copies;
    const h = readHeader(message);
    state.ref = h.senderUniqueReference;
    state.connectionProvider = h.connectionProviderId;
    if (h.senderDipId !== caller.dipId && h.connectionProviderId === caller.dipId && this.registry.actingAs(caller, h.senderDipId)) state.sentFor = h.senderDipId;
    state.refusal = this.checkHeader(channel, caller, h, now, index);
    // Case-folding copies what it rewrites: the same object means the sender's text still describes it.
    if (!state.refusal) state.validated = { message, header: h, schemaVersion: validated.schemaVersion, customBlock: customBlock !== null && message.payload.CustomBlock === customBlock.value ? customBlock.text : null };
    return state;
  }

  /**
   * An item holding a number a double does not hold: MSG1001 naming the number, unless the schema refuses
   * a number in that field at all (S1.senderDIPID written unquoted): its digits are then beside the point,
   * and the item is answered as any number there is, for the field's type with the field's own code
   * (schemaFailureCode: MSG1009 for senderDIPID alone, MSG1001 beside other problems). Validation reads the
   * altered value only to refuse it, and a type is the same whatever the digits. A number beyond the
   * largest double reads as Infinity, which a `number` field refuses for its type too: named as it is.
   */
  private alteredNumberRefusal(channel: Channel, item: unknown, copies: Record<string, string> | null, altered: AlteredNumber, index: number): Refusal {
    const prefix = `item ${index}: `;
    const validated = this.catalogue.validate(channel.interfaceId, item, { encryptedPayload: copies !== null });
    const field = altered.path.toLowerCase();
    if (!validated.ok && altered.delivered !== 'null' && validated.errors.some((e) => e.rule === 'type' && e.path.toLowerCase() === field)) {
      return { status: 400, code: schemaFailureCode(validated.paths), help: `${prefix}${describeIssues(validated.errors, validated.count, HELP_MAX - prefix.length)}` };
    }
    return { status: 400, code: MSG.schemaFailure, help: `${prefix}${alteredNumberHelp(altered)}` };
  }

  /** One read of the lookup per distinct MPAN in the batch, before routing (which is synchronous). */
  private async lookUpMpans(channel: Channel, states: ItemState[]): Promise<Map<string, readonly Appointment[]>> {
    const found = new Map<string, readonly Appointment[]>();
    if (!channel.secondaryRouting) return found;
    for (const s of states) {
      const mpan = s.validated?.header.mpan;
      if (mpan && !found.has(mpan)) found.set(mpan, await this.mpan.history(mpan));
    }
    return found;
  }

  private routeItem(channel: Channel, state: ItemState, index: number, now: Date, stamp: string, histories: Map<string, readonly Appointment[]>): void {
    if (!state.validated) return;
    const { message, header: h, customBlock } = state.validated;
    const history = h.mpan === null ? undefined : histories.get(h.mpan);
    const secondary = history
      ? secondaryRecipients(channel.receiverRoles, history, addressingDate(message, channel.addressingDatePath, now.getTime()), (id) => this.registry.participant(id)?.roles)
      : { recipients: [], skipped: [] };
    const consumedBy = dipConsumedRecipient(channel.interfaceId, h.senderDipId);
    const decision = consumedBy ? routeToDip(channel, h, this.settings.dipId, consumedBy) : route(channel, h, this.registry, { enabled: channel.secondaryRouting, ...secondary });
    if (!decision.ok) {
      state.refusal = { status: 400, code: decision.code, help: `item ${index}: ${decision.help}` };
      return;
    }
    state.unreached = decision.unreached.map(({ code, help, holder }) => ({ code, help, holder: holder.dipId, slot: holder.slot }));
    state.alwaysLeftOut = decision.alwaysLeftOut;
    // The DIP reads what it consumes itself in clear: no recipient's key is needed.
    const unreachable = consumedBy ? null : this.unreachable(channel, message, decision.recipients);
    if (unreachable) {
      state.refusal = { status: 400, code: MSG.routingError, help: `item ${index}: ${unreachable}` };
      return;
    }
    // Accepted all the same: a new certificate is a registration away, and the copy waits in its queue
    // for it (as for a webhook that is down); the sender is told now why it may be late.
    if (channel.securityPattern === 2 && !consumedBy) {
      for (const id of decision.recipients) {
        const withheld = this.encryption.withheld(id);
        if (withheld !== null) state.notes.push(withheld);
      }
    }
    const transactionId = newTransactionId(channel.interfaceId, h.senderDipId, h.senderRoleId, now);
    // Spec 5.5.5: on a channel that starts a workflow the DIP generates the workflow's correlation ID, so
    // every message there gets a new one; follow-on messages, on the other channels, carry theirs in S1
    // (DI-985, "returned by Sender"). One of the sender's on a starter is not taken (it could open a workflow
    // under another's ID; its recipients get S1.senderCorrelationID null, as from a sender that gave none)
    // nor refused (an adapter that fills the field everywhere still gets its message through): the 201's
    // help says which ID the workflow has.
    const correlationId = channel.workflowStarter ? newCorrelationId(now) : h.senderCorrelationId;
    if (channel.workflowStarter && h.senderCorrelationId !== null) {
      state.notes.push(`S1.senderCorrelationID ${h.senderCorrelationId} was not taken: ${channel.interfaceId} starts a workflow, and the DIP assigned it correlationID ${correlationId} (spec 5.5.5); carry that in S1.senderCorrelationID on the workflow's later messages`);
    }
    const outbound = stampWrapper(message, {
      transactionId,
      transactionTimestamp: stamp,
      publicationId: channel.publicationId,
      initialCorrelationId: correlationId,
      replayIndicator: false,
      primaryRecipients: decision.primary,
      secondaryRecipients: decision.secondary,
      alwaysRecipients: decision.always,
      ...(channel.workflowStarter && h.senderCorrelationId !== null ? { senderCorrelationId: null } : {}),
    });
    state.accepted = {
      transactionId,
      channel: channel.interfaceId,
      eventCode: h.eventCode,
      senderDipId: h.senderDipId,
      senderRole: h.senderRoleId,
      senderUniqueReference: h.senderUniqueReference,
      correlationId,
      mpan: h.mpan,
      receivedAt: now.getTime(),
      outbound: serialiseOutbound(outbound, customBlock),
      // On a pattern 3 channel the DIP cannot read the payload, so it cannot feed the lookup either.
      recipients: channel.mpanFeed && channel.securityPattern !== 3 ? [...decision.recipients, MPAN_LOOKUP_RECIPIENT] : decision.recipients,
      // What each recipient's copy is obfuscated for, kept with its queue entry (src/domain/channel.ts capacityCode).
      capacities: decision.capacities,
      // Its copies are never made clearer than the pattern it arrived under, whatever the channel runs later (copyPattern).
      securityPattern: channel.securityPattern,
    };
  }

  /** On an encrypted channel, every recipient must be reachable: a clear refusal now, not a silent drop later. */
  private unreachable(channel: Channel, message: DipMessage, recipients: string[]): string | null {
    if (channel.securityPattern === 2) {
      const missing = recipients.filter((id) => !this.encryption.encryptable(id));
      return missing.length ? `recipient(s) ${missing.join(', ')} have no certificate the payload can be encrypted to (security pattern 2)` : null;
    }
    if (channel.securityPattern === 3) {
      const copies = (message.payload as Record<string, unknown>)[ENCRYPTED_BLOCKS] as Record<string, string>;
      const missing = recipients.filter((id) => copies[id] === undefined);
      const extra = Object.keys(copies).filter((id) => !recipients.includes(id));
      if (missing.length) return `payload.${ENCRYPTED_BLOCKS} has no copy for recipient(s) ${missing.join(', ')} (security pattern 3: one copy per recipient)`;
      if (extra.length) return `payload.${ENCRYPTED_BLOCKS} has copies for ${extra.join(', ')}, who are not recipients of this message`;
      // Encrypted to a key that is compromised or expired: refused, not relayed (the sender fetched it before the revocation).
      for (const id of recipients) {
        const invalid = this.encryption.senderMustNotEncrypt(id);
        if (invalid !== null) return `payload.${ENCRYPTED_BLOCKS}.${id}: ${invalid}`;
      }
    }
    return null;
  }

  private checkHeader(channel: Channel, caller: Participant, h: MessageHeader, now: Date, index: number): Refusal | null {
    const at = `item ${index}: S1`;
    if (h.environmentTag !== this.settings.environment) {
      return { status: 400, code: MSG.schemaFailure, help: `${at}.environmentTag is ${h.environmentTag}, but this DIP is the ${this.settings.environment} environment` };
    }
    // A connection provider sends for exactly the participants that nominated it, and says so in S1.
    const sender = this.registry.actingAs(caller, h.senderDipId);
    if (!sender) {
      return { status: 403, code: MSG.senderDipIdInvalid, help: `${at}.senderDIPID is ${h.senderDipId}, but the caller is ${caller.dipId} and does not connect for ${h.senderDipId}${this.registry.refusalNote(h.senderDipId)}` };
    }
    if (sender !== caller && h.connectionProviderId !== caller.dipId) {
      return { status: 403, code: MSG.connectionProviderInvalid, help: `${at}.DIPConnectionProviderID must be ${caller.dipId}, the connection provider sending for ${sender.dipId}` };
    }
    if (!sender.roles.includes(h.senderRoleId)) {
      return { status: 403, code: MSG.senderRoleInvalid, help: `${at}.senderRoleID ${h.senderRoleId} is not a role of ${sender.dipId} (${sender.roles.join(', ')})` };
    }
    if (!channel.senderRoles.includes(h.senderRoleId)) {
      return { status: 403, code: MSG.senderRoleInvalid, help: `${at}.senderRoleID ${h.senderRoleId} may not send on ${channel.interfaceId} (senders: ${channel.senderRoles.join(', ')})` };
    }
    if (h.connectionProviderId !== null && h.connectionProviderId !== caller.dipId) {
      return { status: 403, code: MSG.connectionProviderInvalid, help: `${at}.DIPConnectionProviderID ${h.connectionProviderId} is not the caller ${caller.dipId}` };
    }
    const timeProblem = sentTimeProblem(`${at}.senderTimestamp`, h.senderTimestamp, now, this.settings.maxClockSkewMs);
    if (timeProblem) return { status: 400, code: MSG.senderTimestampInvalid, help: timeProblem };
    return null;
  }

  private refuse(now: Date, callerId: string, states: ItemState[], failed: ItemState): IngestResult {
    // Every item that failed, so that a sender fixing the batch learns of them all from any entry.
    const failing = states.flatMap((s, i) => (s.refusal ? [i] : []));
    const entries: EntryFields[] = states.map((s) => ({
      ...(s.original ? { transactionID: s.original } : {}),
      senderUniqueReference: s.ref,
      ...answeredFor(s),
      message: s.refusal?.code ?? MSG.processingFailed,
      help: s.refusal?.help ?? refusedWholeHelp(failing),
    }));
    return { status: failed.refusal!.status, response: standardResponse(now, this.settings.dipId, callerId, entries) };
  }

  private unavailable(now: Date, callerId: string, err: StoreError): IngestResult {
    const why = err.kind === 'fatal' ? 'the DIP stopped taking writes after a storage failure and is restarting' : `the DIP cannot store messages right now (${err.code ?? 'storage unavailable'})`;
    // The store lost its answer as the batch committed and could not find out whether it had (its
    // server unreachable since): saying "nothing was accepted" could be false, and the resend would then
    // be refused as duplicates. Said as it is; the resend's answer settles it either way.
    const help =
      err.code === COMMIT_IN_DOUBT
        ? 'the DIP lost its store as it committed this batch, and cannot tell yet whether the batch was accepted: send it again unchanged after the Retry-After interval; if it was accepted, each message is refused as a duplicate (MSG1006) naming the transaction ID it was accepted as'
        : `${why}; nothing of this batch was accepted: send it again unchanged after the Retry-After interval`;
    return {
      ...this.whole(now, callerId, 503, MSG.processingFailed, help),
      retryAfterSeconds: STORE_RETRY_AFTER_SECONDS,
    };
  }

  private whole(now: Date, callerId: string | null, status: number, code: MsgText, help: string): IngestResult {
    return { status, response: standardResponse(now, this.settings.dipId, callerId, [{ message: code, help }]) };
  }
}

/**
 * The body's items, parsed, and where each lies in it (null when the body was parsed whole, which the
 * scan leaves to malformed bodies: it was then checked whole for altered numbers), or why it is refused whole.
 */
function parseBatch(body: Buffer, limits: Pick<IngestSettings, 'maxBatchMessages' | 'maxJsonDepth' | 'jsonCounts'>): { items: unknown[]; spans: ItemSpan[] | null } | { status: number; help: string } {
  // Before parsing, and here rather than in the listener, so that it runs on an ingest thread: too deep,
  // or an object (a message) of so many members that parsing and validating it would hold the thread.
  const scan = scanJsonBatch(body, limits.maxJsonDepth, limits.jsonCounts);
  if (scan.excess !== null) return { status: 400, help: scan.excess };
  const max = limits.maxBatchMessages;
  let parsed: unknown;
  let spans: ItemSpan[] | null = null;
  try {
    const items = scan.items && parseItems(body, scan.items);
    if (items) spans = scan.items;
    parsed = items ?? JSON.parse(body.toString('utf8'));
  } catch (e) {
    return { status: 400, help: `the body is not valid JSON: ${(e as Error).message}` };
  }
  if (!Array.isArray(parsed)) return { status: 400, help: 'the body must be a JSON array of messages ({"payload": {...}})' };
  if (parsed.length === 0) return { status: 400, help: 'the body is an empty array: send at least one message' };
  if (parsed.length > max) return { status: 413, help: batchTooLargeHelp(parsed.length, max, 'messages') };
  const twice = duplicateName(body, parsed, spans);
  if (twice) return { status: 400, help: twice };
  if (hasSurrogateEscape(body)) {
    for (let i = 0; i < parsed.length; i++) {
      const path = firstLoneSurrogate(parsed[i]);
      if (path !== null) return { status: 400, help: `item ${i}: ${loneSurrogateHelp(path)}` };
    }
  }
  if (spans === null) {
    const altered = firstAlteredNumber(body.toString('utf8'));
    if (altered) return { status: 400, help: `the body: ${alteredNumberHelp(altered)}` };
  }
  return { items: parsed, spans };
}

type AlteredNumber = NonNullable<ReturnType<typeof firstAlteredNumber>>;

/** The first number of an item a double does not hold (json-numbers.ts), read again only when the scan flagged one. */
function alteredNumberIn(body: Buffer, span: ItemSpan | undefined): AlteredNumber | null {
  if (!span?.longNumber || !hasAlteredNumber(body, span.start, span.end)) return null;
  return firstAlteredNumber(body.toString('utf8', span.start, span.end));
}

/**
 * Why the batch is refused when one of its objects gives a member name twice in the same case (see
 * memberCount: the parse kept one of the two values, not necessarily the one a reader of the signed
 * text would take), or null. Counted per item against the scan; a body parsed whole (no spans) is rare
 * and read again for it.
 */
function duplicateName(body: Buffer, items: unknown[], spans: ItemSpan[] | null): string | null {
  if (spans === null) {
    const d = firstDuplicateName(body.toString('utf8'));
    return d ? `the body: ${nameGivenTwice(d)}` : null;
  }
  for (let i = 0; i < items.length; i++) {
    const span = spans[i]!;
    if (memberCount(items[i]) === span.members) continue;
    const d = firstDuplicateName(body.toString('utf8', span.start, span.end));
    if (d) return `item ${i}: ${nameGivenTwice(d)}`;
  }
  return null;
}

/**
 * A top-level array parsed item by item from the spans the scan found: the same values as JSON.parse of
 * the whole body (each item's text is parsed whole, and the scan checked the brackets and commas between
 * them), without decoding the body into one large string (see scanJsonBatch). Null when an item does not
 * parse: the whole body is parsed then, so a malformed batch is refused with JSON.parse's own message.
 */
function parseItems(body: Buffer, spans: ItemSpan[]): unknown[] | null {
  const items: unknown[] = [];
  try {
    for (const s of spans) items.push(JSON.parse(body.toString('utf8', s.start, s.end)));
  } catch {
    return null;
  }
  return items;
}

/**
 * The sender's text of an item's payload.CustomBlock, and the parsed value it stands for, when the scan
 * found it canonical and the item reached validation as parsed (not rewritten by a security pattern).
 */
function sendersText(body: Buffer, parsed: unknown, prepared: unknown, span: Span | null | undefined): { value: unknown; text: string } | null {
  if (!span || prepared !== parsed) return null;
  // The span exists only where the item is an object whose exact keys payload and CustomBlock are given once.
  const value = (parsed as { payload: { CustomBlock: unknown } }).payload.CustomBlock;
  return { value, text: body.toString('utf8', span.start, span.end) };
}

/**
 * The first few validation issues, for a help text (which is limited to 500 characters). The catalogue
 * gives them shallowest first (firstIssues), so a missing or mistyped payload.CommonBlock is named
 * rather than left among the "more" behind the fields it would have held.
 */
function describeIssues(errors: readonly ValidationIssue[], count: number, budget: number): string {
  // Within the help text's published limit (clipHelp cuts what is longer): the count of the rest is kept
  // and the issues shown give way, since a clipped tail would hide how many problems there are.
  const reserve = ` (+${count} more)`.length;
  const shown: string[] = [];
  let length = 0;
  for (const e of errors.slice(0, 3)) {
    const added = (shown.length > 0 ? 2 : 0) + e.message.length;
    if (length + added + reserve > budget) {
      if (shown.length === 0) shown.push(`${e.message.slice(0, Math.max(0, budget - reserve - 1))}…`);
      break;
    }
    shown.push(e.message);
    length += added;
  }
  // Counted from every issue found (`count`), not from `errors`, which the catalogue has already cut to ten.
  const more = count > shown.length ? ` (+${count - shown.length} more)` : '';
  return `${shown.join('; ')}${more}`;
}

/** "item 2", "items 0 and 2", "items 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 990 more": short enough for a help text. */
/**
 * An accepted entry's help: null unless something the sender should know happened to its message, as the
 * published answer has it. When the MPAN lookup named a holder, or the channel names a participant to
 * always receive, who got no copy (spec 5.5.9: what the DIP could not route is told to the sender), the
 * message stands, as MSG0000, for the recipients who got it, and the help says each one left out with
 * the published code for it (MSG1033/MSG1034, MSG1035), so the entry can be corrected (an always
 * participant's by the operators: the help does not name it).
 */
function acceptedHelp(s: ItemState): string | null {
  const said = [...s.notes];
  const leftOut = [...s.unreached, ...s.alwaysLeftOut];
  // Once each: two unregistered always participants read alike, as their DIP IDs are not said (routing.ts).
  const told = [...new Set(leftOut.map((u) => `${u.help} (${u.code.slice(0, 7)})`))];
  if (told.length > 0) said.push(`accepted and routed to its other recipients; left out, with no copy: ${told.join('; ')}`);
  return said.length > 0 ? said.join('; ') : null;
}

function alwaysLeftOutCodes(states: ItemState[]): Pick<IngestResult, 'alwaysLeftOut'> {
  const leftOut = states.flatMap((s) => s.alwaysLeftOut.map((u) => ({ transactionId: s.accepted!.transactionId, dipId: u.dipId, code: u.code.slice(0, 7) })));
  return leftOut.length > 0 ? { alwaysLeftOut: leftOut } : {};
}

function unreachedCodes(states: ItemState[]): Pick<IngestResult, 'unreached'> {
  const unreached = states.flatMap((s) => s.unreached.map((u) => ({ transactionId: s.accepted!.transactionId, holder: u.holder, slot: u.slot, code: u.code.slice(0, 7) })));
  return unreached.length > 0 ? { unreached } : {};
}

function markDuplicatesInBatch(states: ItemState[]): void {
  const seen = new Set<string>();
  states.forEach((s, i) => {
    if (s.ref === null || s.refusal) return;
    if (seen.has(s.ref)) s.refusal = { status: 400, code: MSG.duplicateReference, help: `item ${i}: S1.senderUniqueReference ${s.ref} appears twice in this batch` };
    seen.add(s.ref);
  });
}

/** For the error answer only: the sender's reference, found whatever the case of the keys. */
function bestEffortReference(item: unknown): string | null {
  const get = (o: unknown, key: string): unknown => {
    if (typeof o !== 'object' || o === null) return undefined;
    const k = Object.keys(o).find((x) => x.toLowerCase() === key);
    return k === undefined ? undefined : (o as Record<string, unknown>)[k];
  };
  const ref = get(get(get(get(item, 'payload'), 'commonblock'), 's1'), 'senderuniquereference');
  return typeof ref === 'string' ? ref : null;
}

const isDipHeader = (name: string): name is `x-dip-${string}` => name.startsWith('x-dip-');

function signatureHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (isDipHeader(k) && v !== undefined) out[k] = v;
  return out;
}
