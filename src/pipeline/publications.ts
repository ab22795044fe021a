import { createHash, randomUUID } from 'node:crypto';
import { receivesOn } from '../domain/channel.js';
import type { Participant } from '../domain/participant.js';
import { MSG, type MsgText } from '../domain/response-codes.js';
import { dipDateTime, yyyymmdd } from '../domain/time.js';
import { newTransactionId } from '../domain/transaction-id.js';
import type { Clock } from '../ports/clock.js';
import { storeFailureKind } from '../ports/errors.js';
import type { Logger } from '../ports/logger.js';
import type { AcceptedBatch, MessageLog, QueueRef } from '../ports/message-log.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { BlobTooLarge, type Compression, type PublicationBlobs, type PublicationIndex, type PublicationMetadata, type PublicationNotice, type PublicationQuery, type PublicationOwed, type PublicationRecord, type WithdrawalNoticeOwed } from '../ports/publications.js';
import { describePublication, describeWithdrawn } from './publication-view.js';
import { decoded, isDecompressionError } from './publication-content.js';
import { RefusedError } from './refused.js';
import type { Channel } from './channels.js';
import { dipMadeBatch } from './made-batch.js';
import type { DipMetrics } from './metrics.js';
import type { Registry } from './registry.js';

/** Per-channel settings (config `publications`). */
export interface PublicationSettings {
  maxBytes(channel: string): number;
  retentionMs(channel: string): number;
  /**
   * How long bytes with no committed record are left alone before the sweep removes them: longer than an
   * upload may go without a byte (an upload under way keeps writing) and than a commit takes.
   */
  orphanGraceMs: number;
  /** Roles that may publish on the channel; absent: the channel's sender roles. */
  publisherRoles(channel: string): readonly string[] | undefined;
  /** The participant listener's base URL (https://host:port), and the anonymous listener's when it is enabled. */
  participantBaseUrl(): string;
  publicBaseUrl(): string | null;
  /** S1.environmentTag of the notices. */
  environment: string;
  /** Whether a recipient can be given the channel's copy (on pattern 2: it has a key to encrypt to). */
  reachable(channel: Channel, dipId: string): boolean;
  /** The channel of a stored publication, for queueing its notice after a crash (queueMissedNotices). */
  channel(interfaceId: string): Channel | undefined;
}

/**
 * How long after its record a publication's notice is left to the publish that stored it (on whichever
 * node): much longer than the record's insert and the notice's append can take between them (each up to
 * the PostgreSQL query timeout, 35 s), with the nodes' clocks a little apart. queueMissedNotices queues
 * only older ones, so it does not race a publish under way (the log would refuse the second notice, and
 * the publisher would be answered with the pass's transaction ID). A publish whose append fails leaves
 * its notice to the first pass after the grace.
 */
export const NOTICE_GRACE_MS = 5 * 60_000;

/** The published channel of notifications of a downloadable asset: every notice is one of its messages. */
export const NOTICE_INTERFACE = 'IF-047';

/**
 * The notice's sender unique reference (in the message log and in S1): one per publication, so that a
 * notice made again after a crash is refused as the duplicate of one queued before it. It has the
 * published form of a sender's reference (DT-995N, `S-<interface>-<DIP ID>-<role>-<date>-<unique>`), so a
 * recipient that validates the notice, and the publisher the status messages about it, accept it: IF-047,
 * the publisher's DIP ID (the pattern takes ten hexadecimal digits: another DIP ID is stood for by ten of
 * its SHA-256), role DIP (the DIP made the reference, on the publisher's behalf), the day it was published,
 * then the publication ID's hex digits, after PUB for its availability and WDN for its withdrawal. Made from
 * the record alone, so the pass for missed notices makes the same one. The ID is the DIP's random UUID,
 * which the publisher learns only once it is stored.
 */
export const noticeReference = (record: Pick<PublicationRecord, 'id' | 'publisherDipId' | 'publishedAt'>, notice: PublicationNotice = 'availability'): string => {
  const dip = /^[0-9a-f]{10}$/i.test(record.publisherDipId) ? record.publisherDipId : createHash('sha256').update(record.publisherDipId).digest('hex').slice(0, 10);
  return `S-${NOTICE_INTERFACE}-${dip}-DIP-${yyyymmdd(new Date(record.publishedAt))}-${notice === 'availability' ? 'PUB' : 'WDN'}${record.id.replace(/[^0-9a-z]/gi, '')}`;
};

export type PublishOutcome =
  /**
   * Stored. `transactionId`: the notice's, as its recipients get it; null while the notice is pending (its
   * append failed: queueMissedNotices makes and queues it once NOTICE_GRACE_MS have passed, under a
   * transaction ID of its own). `queues`: those the notice was appended to (none while it is pending).
   */
  | { ok: true; record: PublicationRecord; transactionId: string | null; notice: 'queued' | 'pending'; recipients: string[]; queues: QueueRef[] }
  /** `message`: the DI-999 code when it is not the one the status implies (MSG1000 for 403, MSG1001 otherwise). */
  | { ok: false; status: 400 | 403 | 409 | 413; help: string; message?: MsgText };

/**
 * Spec 5.6: a publication is a payload (a large one) that its recipients are told of and download; nothing
 * allows one with no bytes, which told every recipient of a file with nothing in it.
 */
function emptyPayload(): PublishOutcome {
  return { ok: false, status: 400, help: 'the payload is empty (0 bytes): a publication carries its payload (spec 5.6), and its recipients would be told of a file with nothing in it; nothing was kept' };
}

/** Why bytes declared in `compression` do not decode in it (zlib's words), or null when they do (or none is declared). */
async function undecodable(compression: Compression, bytes: AsyncIterable<Buffer>): Promise<string | null> {
  if (compression === 'none') return null;
  try {
    for await (const _ of decoded(compression, bytes)) void _;
    return null;
  } catch (err) {
    if (isDecompressionError(err)) return err.message;
    throw err;
  }
}

/** Who may see a channel's publications: its recipients and its publishers; anyone for public ones. */
export function mayRead(channel: Channel, caller: Participant, publisherRoles: readonly string[]): boolean {
  return receivesOn(channel, caller) || caller.roles.some((r) => publisherRoles.includes(r));
}

/** Whether a publication is for the caller: one for every recipient of its channel, or one naming the caller (or published by it). */
export function namesCaller(record: PublicationRecord, caller: Participant): boolean {
  return record.recipients === null || record.publisherDipId === caller.dipId || record.recipients.includes(caller.dipId);
}

/**
 * Why the caller may not download a publication named on a channel, or null when it may: the API's
 * answer (404 when there is no such publication on that channel, 410 when it was withdrawn), for the
 * participant listener and the user portal alike. One the caller may not read (not public, and it neither
 * receives nor publishes on the channel; or its publisher named its recipients, the caller not among
 * them) is answered exactly as an unknown ID (RFC 9110 15.5.4, as the anonymous listener does): a 403
 * told the caller that the ID it guessed or was passed was a publication, and a 410 after a withdrawal
 * would say so too. `nominees`: the participants that nominated the caller as their DIP Connection
 * Provider now (Registry.identitiesOf): it reads what any of them may, as it pulls their notices; a
 * nomination withdrawn, it no longer does.
 */
export function downloadRefusal(
  channel: Channel,
  caller: Participant,
  id: string,
  record: PublicationRecord | undefined,
  publisherRoles: readonly string[],
  nominees: readonly Participant[] = [],
): { status: 404 | 410; help: string } | null {
  const unknown = { status: 404 as const, help: `no publication ${id} on ${channel.interfaceId}` };
  if (!record || record.channel !== channel.interfaceId) return unknown;
  // Said only to whoever could read it before: to anyone else a withdrawn publication is unknown as before.
  const reads = (p: Participant) => namesCaller(record, p) && (record.public || mayRead(channel, p, publisherRoles));
  if (!reads(caller) && !nominees.some(reads)) return unknown;
  return record.withdrawn ? { status: 410, help: withdrawnHelp(record) } : null;
}

/** Who withdrew a publication, as its recipients are told: its publisher, or the DIP operator (not by name). */
export function withdrawnBy(record: PublicationRecord): 'publisher' | 'operator' {
  return record.withdrawn?.by === `participant:${record.publisherDipId}` ? 'publisher' : 'operator';
}

/** Why a withdrawn publication is gone, for whoever asks for it (410): who, when, and the reason given. */
export function withdrawnHelp(record: PublicationRecord): string {
  const w = record.withdrawn;
  const by = withdrawnBy(record) === 'publisher' ? 'its publisher' : 'the DIP operator';
  return `publication ${record.id} (${record.publicationType} version ${record.version} on ${record.channel}) was withdrawn by ${by} at ${w ? dipDateTime(new Date(w.at)) : '?'}: ${w?.reason ?? ''}. Its bytes are gone; ask its publisher (${record.publisherDipId}) for a new version if you need one`;
}

/** What a withdrawal told: `notice` and `queues` as for a publish (PublishOutcome). */
export interface WithdrawOutcome {
  before: PublicationRecord;
  after: PublicationRecord;
  /** 'none': its recipients were never told of the publication (its notice not yet queued), and are told of neither. */
  notice: 'queued' | 'pending' | 'none';
  recipients: string[];
  queues: QueueRef[];
}

/** Only the publication's publisher may withdraw it, and only on its channel: to anyone else it is an unknown ID. */
export interface WithdrawScope {
  publisher: string;
  channel: string;
}

/** The longest reason an operator or publisher may give for a withdrawal (it is said in every 410 and in the withdrawal notice). */
export const WITHDRAWAL_REASON_MAX = 500;

/**
 * Pattern B (spec 5.6): a publisher uploads a large payload once; the DIP keeps it (sealed, durable),
 * records its metadata, and tells every registered recipient of the channel through the ordinary road
 * (an IF-047-shaped notice in the channel's queues: webhook or pull, ordered, retried, replayable,
 * obfuscated and encrypted per the channel), with the URI to download it from.
 */
export class Publications {
  constructor(
    private readonly index: PublicationIndex,
    private readonly blobs: PublicationBlobs,
    private readonly log: Pick<MessageLog, 'append'>,
    private readonly registry: Pick<Registry, 'participants'>,
    private readonly settings: PublicationSettings,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** Notices left unqueued are counted, not only logged: an operator is alerted by the metric, not by reading logs. */
    private readonly metrics: Pick<DipMetrics, 'publicationNoticeUnqueued'>,
    /** Where a withdrawal is journalled, naming who withdrew it (an operator, or the publisher). */
    private readonly journal: Pick<OperatorJournal, 'append'>,
  ) {}

  publisherRoles(channel: Channel): readonly string[] {
    return this.settings.publisherRoles(channel.interfaceId) ?? channel.senderRoles;
  }

  maxBytes(channel: string): number {
    return this.settings.maxBytes(channel);
  }

  /** Where a participant downloads the publication (mutual TLS). */
  downloadUrl(record: PublicationRecord): string {
    return `${this.settings.participantBaseUrl()}/dip-channel/${record.channel}/publications/${record.id}/content`;
  }

  publicBaseUrl(): string | null {
    return this.settings.publicBaseUrl();
  }

  /** Where anyone downloads a public publication (the anonymous listener); null when it is not public or the listener is off. */
  publicUrl(record: PublicationRecord): string | null {
    const base = this.settings.publicBaseUrl();
    return record.public && base !== null ? `${base}/publications/${record.id}/content` : null;
  }

  /**
   * What can be refused before a byte is read: the publisher's roles, the channel's pattern, the size it
   * announces, and a version or type that is not its to add. The insert checks the last two again.
   */
  async precheck(caller: Participant, channel: Channel, meta: PublicationMetadata, announcedBytes: number | undefined): Promise<PublishOutcome | null> {
    const roles = this.publisherRoles(channel);
    if (!caller.roles.some((r) => roles.includes(r))) {
      return { ok: false, status: 403, help: `${caller.dipId} holds ${caller.roles.join(', ')}; only ${roles.join(', ') || 'no role'} may publish on ${channel.interfaceId}` };
    }
    if (channel.securityPattern === 3) {
      return { ok: false, status: 400, help: `${channel.interfaceId} is end-to-end encrypted (security pattern 3): the DIP cannot hold a publication it may not read; publish on a pattern 1 or 2 channel` };
    }
    for (const id of meta.recipients ?? []) {
      const named = this.registry.participants().find((p) => p.dipId === id);
      if (!named || !receivesOn(channel, named)) return { ok: false, status: 400, help: `recipients: ${id} is not a participant that receives on ${channel.interfaceId}` };
    }
    if (announcedBytes === 0) return emptyPayload();
    const limit = this.settings.maxBytes(channel.interfaceId);
    if (announcedBytes !== undefined && announcedBytes > limit) return { ok: false, status: 413, help: `Content-Length ${announcedBytes} is larger than the limit of ${limit} bytes on ${channel.interfaceId}` };
    // Withdrawn versions too: a withdrawn version stays taken, and is refused before its upload is read.
    const [sameVersion] = await this.index.find({ channel: channel.interfaceId, publicationType: meta.publicationType, version: meta.version, includeWithdrawn: true, limit: 1 });
    if (sameVersion) return versionExists(sameVersion);
    // The exact spelling's owner first, where two spellings were stored before types were read in any case.
    const sameTypes = await this.index.find({ channel: channel.interfaceId, publicationType: meta.publicationType, includeWithdrawn: true, limit: 50 });
    const sameType = sameTypes.find((r) => r.publicationType === meta.publicationType) ?? sameTypes[0];
    if (sameType && sameType.publisherDipId !== caller.dipId) return ownedByOther(channel.interfaceId, meta.publicationType, sameType.publisherDipId);
    return null;
  }

  /**
   * Stores the payload (durably, sealed), checks it against the hash the publisher signed, records it and
   * appends its notice for every recipient, all before answering. Nothing of a refused upload is kept.
   */
  async publish(caller: Participant, channel: Channel, meta: PublicationMetadata, signedSha256Hex: string, body: AsyncIterable<Uint8Array>): Promise<PublishOutcome> {
    const early = await this.precheck(caller, channel, meta, undefined);
    if (early) return early;
    const id = randomUUID();
    const limit = this.settings.maxBytes(channel.interfaceId);
    let stored;
    try {
      stored = await this.blobs.put(id, body, { maxBytes: limit });
    } catch (err) {
      if (err instanceof BlobTooLarge) return { ok: false, status: 413, help: `the payload is larger than the limit of ${limit} bytes on ${channel.interfaceId}` };
      throw err;
    }
    if (stored.size === 0) {
      await this.blobs.remove(id, stored.size);
      return emptyPayload();
    }
    if (stored.sha256 !== signedSha256Hex) {
      await this.blobs.remove(id, stored.size);
      return {
        ok: false,
        status: 400,
        help: `the payload received (${stored.size} bytes, SHA-256 ${Buffer.from(stored.sha256, 'hex').toString('base64')}) does not match X-DIP-Content-Hash ${Buffer.from(signedSha256Hex, 'hex').toString('base64')}: it was changed or cut short on the way; nothing was kept`,
      };
    }
    // Declared compressed, the bytes are read through once: ones that are not in that compression were
    // taken and failed only at a recipient's filtered download (422).
    const notCompressed = await undecodable(meta.compression, this.blobs.read(id, stored.size));
    if (notCompressed !== null) {
      await this.blobs.remove(id, stored.size);
      return { ok: false, status: 400, help: `compression: the payload is declared ${meta.compression} but is not (${notCompressed}); declare compression none, or send the ${meta.compression} bytes; nothing was kept` };
    }
    const given: PublicationRecord = { ...meta, id, publisherDipId: caller.dipId, size: stored.size, sha256: stored.sha256, publishedAt: this.clock.now() };
    const inserted = await this.index.insert(given);
    if (!inserted.ok) {
      await this.blobs.remove(id, stored.size);
      return inserted.reason === 'version-exists' ? versionExists(inserted.existing) : ownedByOther(channel.interfaceId, meta.publicationType, inserted.owner);
    }
    // Stored under the type's first spelling when given in another case: the notice and the answer say it so.
    const record = inserted.publicationType === undefined ? given : { ...given, publicationType: inserted.publicationType };
    // The record says its notice is not queued yet until markQueued: a crash from here on leaves it for
    // queueMissedNotices at the next start, which queues the notice unless the log holds it already.
    const told = await this.tell('availability', channel, caller, record);
    if (told.notice === 'queued') this.logger.info({ publication: id, channel: channel.interfaceId, bytes: record.size, recipients: told.recipients.length }, 'publication stored and its recipients notified');
    return { ok: true, record, ...told };
  }

  /**
   * Appends a publication's notice (its availability, or its withdrawal) for its recipients, then records it
   * as queued. An append that fails leaves it recorded as not queued: the pass for missed notices queues
   * it once the grace is over, and its sender reference keeps it to one. Taking the record back instead
   * (as was once done for a publish) undid what the caller may already have been told of, or that a pass
   * on another node had just notified; and a 503 would have it sent again. So: done, the notice to follow.
   */
  private async tell(kind: PublicationNotice, channel: Channel, publisher: Pick<Participant, 'dipId' | 'roles'>, record: PublicationRecord): Promise<{ transactionId: string | null; notice: 'queued' | 'pending'; recipients: string[]; queues: QueueRef[] }> {
    const recipients = this.noticeRecipients(kind, channel, publisher, record);
    const batch = this.notice(kind, channel, publisher, record, recipients);
    let transactionId = batch.messages[0]!.transactionId;
    if (recipients.length > 0) {
      let appended;
      try {
        appended = await this.append(kind, record, batch);
      } catch (err) {
        this.logger.warn({ publication: record.id, channel: channel.interfaceId, notice: kind, recipients: recipients.length, err }, 'publication notice could not be queued now: the next pass for missed notices queues it');
        return { transactionId: null, notice: 'pending', recipients, queues: [] };
      }
      // Withdrawn before its notice could be claimed: its recipients are told of neither.
      if (appended === 'withdrawn') return { transactionId: null, notice: 'pending', recipients: [], queues: [] };
      // Refused as a duplicate: queued already, by another node's queueMissedNotices (this took longer than
      // its grace). The notice recipients get is that one.
      if (!appended.ok) transactionId = appended.originals?.[noticeReference(record, kind)] ?? transactionId;
    }
    await this.markQueued(record, kind);
    return { transactionId, notice: 'queued', recipients, queues: recipients.map((r) => ({ recipientDipId: r, channel: channel.interfaceId })) };
  }

  /**
   * Appends a notice; an availability notice only once claimed (PublicationIndex.claimNotice), atomically
   * with any withdrawal: 'withdrawn' when the publication is, and the notice is not appended. So a pass on
   * another node that read the record before its withdrawal cannot queue "available" after "withdrawn", and
   * a withdrawal made while the notice is appended is told after it. The claim records the notice's
   * recipients, durably before it is appended: its withdrawal goes to them. A failed append takes its claim
   * back (not its recipients: the append may have committed).
   */
  private async append(kind: PublicationNotice, record: PublicationRecord, batch: AcceptedBatch): Promise<Awaited<ReturnType<MessageLog['append']>> | 'withdrawn'> {
    if (kind !== 'availability') return this.log.append(batch);
    const at = this.clock.now();
    if (!(await this.index.claimNotice(record.id, at, batch.messages[0]!.recipients))) return 'withdrawn';
    try {
      return await this.log.append(batch);
    } catch (err) {
      await this.index.releaseNotice(record.id, at).catch((e: unknown) => this.logger.warn({ publication: record.id, err: e }, 'publication notice claim not taken back: a withdrawal owes its notice all the same'));
      throw err;
    }
  }

  /**
   * Records that a publication's notice is queued. Failing, the notice is queued all the same, so the
   * publish succeeded: the next queueMissedNotices makes the notice again, the log refuses it as a
   * duplicate, and the mark is written then.
   */
  private async markQueued(record: PublicationRecord, kind: PublicationOwed): Promise<void> {
    try {
      await this.index.noticeQueued(record.id, kind);
    } catch (err) {
      this.logger.warn({ publication: record.id, channel: record.channel, err }, 'publication notice queued, but not recorded as queued: the next pass for missed notices records it');
    }
  }

  /**
   * Queues the notices a crash (or a store that failed twice in a row) left unqueued: of publications
   * whose record committed but whose notice is not recorded as queued, older than NOTICE_GRACE_MS. Each
   * notice is made again with the same sender reference, so one that was queued before the crash is
   * refused by the log as a duplicate and nobody is told twice. Returns how many notices it queued.
   *
   * One publication whose notice cannot be made or appended is logged, counted and left for the next pass,
   * and the pass goes on with the others: stopping there left every later publication's recipients
   * untold for as long as that one failed. The store itself unavailable (or fatal) ends the pass, as
   * every later write would fail alike; it runs again at the next interval.
   */
  queueMissedNotices(batchSize = 100): Promise<number> {
    // One pass at a time in this process: the interval's pass and one asked for (a start, a test) ran side by
    // side and journalled a missed withdrawal twice (each read it owed before either marked it). A pass asked
    // for while one runs starts after it. Across cluster nodes passes may still overlap (README).
    const next = this.passing.then(
      () => this.queueMissedPass(batchSize),
      () => this.queueMissedPass(batchSize),
    );
    this.passing = next.catch(() => 0);
    return next;
  }

  /** The last pass asked for (queueMissedNotices), settled or not. */
  private passing: Promise<number> = Promise.resolve(0);

  private async queueMissedPass(batchSize: number): Promise<number> {
    // Availability first: a publication withdrawn before its notice was queued is owed neither (awaitingNotice
    // leaves it out); one whose withdrawal is owed was notified before it.
    const queued = (await this.queueMissed('availability', batchSize)) + (await this.queueMissed('withdrawal', batchSize));
    // And the withdrawals' journal entries a failed journal left owed (not notices: not counted).
    await this.journalMissed(batchSize);
    return queued;
  }

  private async queueMissed(notice: PublicationNotice, batchSize: number): Promise<number> {
    let queued = 0;
    let failed = 0;
    /** Those left in this pass (failed, or their channel gone): still awaiting, so read past. */
    const left = new Set<string>();
    for (;;) {
      const limit = batchSize + left.size;
      const awaiting = await this.index.awaitingNotice(this.clock.now() - NOTICE_GRACE_MS, limit, notice);
      const fresh = awaiting.filter((r) => !left.has(r.id));
      for (const record of fresh) {
        const channel = this.settings.channel(record.channel);
        if (!channel) {
          // Left as it is: queued once the channel is back (a catalogue that dropped it, for now).
          this.logger.warn({ publication: record.id, channel: record.channel, notice }, 'publication notice not queued: its channel is not in the catalogue');
          this.metrics.publicationNoticeUnqueued('no-channel');
          left.add(record.id);
          continue;
        }
        const publisher = this.publisherOf(record);
        const recipients = this.noticeRecipients(notice, channel, publisher, record);
        try {
          const appended = recipients.length > 0 ? await this.append(notice, record, this.notice(notice, channel, publisher, record, recipients, this.clock.now())) : undefined;
          // Withdrawn since it was read (on any node): its recipients were never told of it, and are not now.
          if (appended === 'withdrawn') continue;
          if (appended?.ok) queued += 1;
          await this.index.noticeQueued(record.id, notice);
        } catch (err) {
          const kind = storeFailureKind(err);
          if (kind === 'unavailable' || kind === 'fatal') throw err;
          failed += 1;
          left.add(record.id);
          this.metrics.publicationNoticeUnqueued('failed');
          this.logger.error({ publication: record.id, channel: record.channel, notice, err }, 'publication notice could not be queued: left for the next pass for missed notices; the others go on');
          continue;
        }
        this.logger.info({ publication: record.id, channel: record.channel, notice, recipients: recipients.length }, 'publication notice checked after a crash: queued unless it was before');
      }
      if (awaiting.length < limit || fresh.length === 0) break;
    }
    if (failed > 0) this.logger.warn({ notice, failed, queued }, 'publication notices left unqueued by this pass for missed notices: each is tried again at the next');
    return queued;
  }

  find(query: PublicationQuery): Promise<PublicationRecord[]> {
    return this.index.find(query);
  }

  get(id: string): Promise<PublicationRecord | undefined> {
    return this.index.get(id);
  }

  /**
   * Withdraws a publication (one sent to the wrong channel, with data it should not have held, or the
   * wrong file), by an operator or, within `scope`, its publisher: one operation for both. The record is
   * marked first, so that from then on nothing lists it and every download is a 410 saying why; then the
   * act is journalled under `by`, its bytes are removed, and its recipients are told (a notice as the
   * publication's, durable as it is: the mark records it owed until queued, and the pass for missed notices
   * queues what a crash left; owed only to recipients told of the publication, and after that notice: see
   * tellWithdrawal). Once marked, no failed step makes it a 500. A crash before the bytes are gone leaves bytes the sweep for bytes with no
   * record removes (sweepOrphans counts a withdrawn record as none). Its version is not reused: a notice
   * with its URI went out. Refused (RefusedError) when there is no such publication (or it is not the
   * scope's publisher's: the same 404), or it is withdrawn already.
   */
  async withdraw(id: string, by: string, reason: string, scope?: WithdrawScope): Promise<WithdrawOutcome> {
    const text = reason.trim();
    if (text.length === 0 || text.length > WITHDRAWAL_REASON_MAX) throw new RefusedError(400, `reason must be 1 to ${WITHDRAWAL_REASON_MAX} characters: it is said to everyone who asks for the publication`);
    const before = await this.index.get(id);
    if (!before || (scope && (before.channel !== scope.channel || before.publisherDipId !== scope.publisher))) throw new RefusedError(404, scope ? `no publication ${id} on ${scope.channel}` : `no publication ${id}`);
    if (before.withdrawn) throw new RefusedError(409, `publication ${id} was withdrawn already, at ${dipDateTime(new Date(before.withdrawn.at))} by ${before.withdrawn.by}`);
    const withdrawn = await this.index.withdraw(id, { at: this.clock.now(), by, reason: text });
    if (!withdrawn) throw new RefusedError(409, `publication ${id} was withdrawn meanwhile`);
    const after = withdrawn.record;
    // Withdrawn from here on, whatever becomes of the rest: a failed step must not turn the answer into a 500
    // (delivery not woken for the notice, and a retry a 409). Journalled first, with the withdrawal: the
    // mark records the entry owed, and a journal that fails leaves it to the pass for missed notices.
    try {
      await this.journalWithdrawal(after);
    } catch (err) {
      this.logger.error({ publication: id, err: (err as Error).message }, 'publication withdrawn; its journal entry could not be written now: the next pass for missed notices writes it');
    }
    // sweepOrphans removes the bytes of a withdrawn record at the next sweep, as after a crash here.
    try {
      await this.blobs.remove(id, before.size);
    } catch (err) {
      this.logger.error({ publication: id, err: (err as Error).message }, 'publication withdrawn; its bytes could not be removed now: the next sweep removes them');
    }
    const told = await this.tellWithdrawal(withdrawn.notice, after);
    this.logger.warn({ publication: id, channel: before.channel, by, reason: text, notice: told.notice, recipients: told.recipients.length }, 'publication withdrawn');
    return { before, after, notice: told.notice, recipients: told.recipients, queues: told.queues };
  }

  /**
   * Journals a withdrawal under who withdrew it (the record says who, when, why, and what it was before),
   * then records the entry written. Failing to record it, the pass writes it again: one entry too many
   * rather than none.
   */
  private async journalWithdrawal(after: PublicationRecord): Promise<void> {
    const w = after.withdrawn!;
    const uri = this.downloadUrl(after);
    await this.journal.append({ at: w.at, actor: w.by, action: 'publication.withdraw', target: after.id, before: describePublication({ ...after, withdrawn: null }, uri), after: describeWithdrawn(after, uri), status: 200 });
    await this.markQueued(after, 'withdrawal-journal');
  }

  /** Journals the withdrawals whose entry a failed journal (or a crash) left unwritten, past the grace. */
  private async journalMissed(batchSize: number): Promise<void> {
    for (const record of await this.index.awaitingNotice(this.clock.now() - NOTICE_GRACE_MS, batchSize, 'withdrawal-journal')) {
      try {
        await this.journalWithdrawal(record);
      } catch (err) {
        const kind = storeFailureKind(err);
        if (kind === 'unavailable' || kind === 'fatal') throw err;
        this.logger.error({ publication: record.id, err }, 'publication withdrawal not journalled: left for the next pass for missed notices; the others go on');
      }
    }
  }

  /**
   * A withdrawal's notice, as `owed` says: none to recipients never told of the publication; after its
   * availability notice, when that is being appended (the pass for missed notices queues it after the
   * grace); now otherwise. A channel the catalogue dropped: the notice stays owed, for the pass once it is back.
   */
  private async tellWithdrawal(owed: WithdrawalNoticeOwed, after: PublicationRecord): Promise<Pick<WithdrawOutcome, 'notice' | 'recipients' | 'queues'>> {
    if (owed === 'none') return { notice: 'none', recipients: [], queues: [] };
    const channel = this.settings.channel(after.channel);
    if (!channel || owed === 'after-availability') return { notice: 'pending', recipients: channel ? this.noticeRecipients('withdrawal', channel, this.publisherOf(after), after) : [], queues: [] };
    return this.tell('withdrawal', channel, this.publisherOf(after), after);
  }

  read(record: PublicationRecord, range?: { start: number; end: number }): AsyncIterable<Buffer> {
    return this.blobs.read(record.id, record.size, range);
  }

  /** A publication's publisher as the registry has it now; one since removed still names itself, with no role. */
  private publisherOf(record: PublicationRecord): Pick<Participant, 'dipId' | 'roles'> {
    return this.registry.participants().find((p) => p.dipId === record.publisherDipId) ?? { dipId: record.publisherDipId, roles: [] };
  }

  /**
   * Retention (spec 5.6.1: each channel its own): superseded versions older than the channel's retention
   * are removed, a batch at a time, the record first so that nothing lists a publication whose bytes
   * are going. The newest version of every type stays.
   */
  async purge(batchSize = 100): Promise<number> {
    let removed = 0;
    for (const channel of await this.index.channels()) {
      const before = this.clock.now() - this.settings.retentionMs(channel);
      for (const p of await this.index.superseded(channel, before, batchSize)) {
        await this.index.remove(p.id);
        await this.blobs.remove(p.id, p.size);
        removed += 1;
      }
    }
    return removed;
  }

  /**
   * Removes bytes no committed record points to, last written longer ago than the grace period: what an
   * upload abandoned half way, or a crash between storing the bytes and committing the record, left
   * behind (a refused upload removes its own bytes; these had no chance to). Returns how many IDs.
   */
  async sweepOrphans(): Promise<number> {
    const cutoff = this.clock.now() - this.settings.orphanGraceMs;
    let removed = 0;
    for await (const blob of this.blobs.list()) {
      // A withdrawn publication's record stays (to answer 410), but its bytes have no business staying.
      if (blob.writtenAt > cutoff) continue;
      const record = await this.index.get(blob.id);
      if (record && !record.withdrawn) continue;
      await this.blobs.discard(blob.id);
      this.logger.warn({ publication: blob.id, writtenAt: new Date(blob.writtenAt).toISOString() }, 'publication bytes with no committed record removed');
      removed += 1;
    }
    return removed;
  }

  /**
   * Who a notice goes to. The availability notice: the channel's recipients now (recipients()). Its
   * withdrawal: exactly those the availability notice was sent to (recorded by its claim), not the channel's
   * recipients of the day: one that joined the channel since was told of no such publication, and one that
   * left it since still holds the notice (delivery dead-letters what it can no longer be given there, and its
   * publisher is told by a status message, as for any message). Of those, not one since offboarded or removed
   * (it has no queue to be told in), nor on pattern 2 one with no key left to encrypt to (its copy could not
   * be made). A record from before the recipients were recorded: the channel's recipients now, as then.
   */
  private noticeRecipients(kind: PublicationNotice, channel: Channel, publisher: Pick<Participant, 'dipId'>, record: PublicationRecord): string[] {
    const told = record.noticeRecipients;
    if (kind === 'availability' || told === undefined || told === null) return this.recipients(channel, publisher, record.recipients);
    const registered = new Set(this.registry.participants().map((p) => p.dipId));
    return told.filter((id) => registered.has(id) && this.settings.reachable(channel, id));
  }

  /**
   * Every participant that receives on the channel (or, when the publisher named some, only those: a
   * holder of an always-routed role could not download it, so is not told of it either), except the
   * publisher itself (on pattern 2, only those the notice can be encrypted to).
   */
  private recipients(channel: Channel, publisher: Pick<Participant, 'dipId'>, named: readonly string[] | null): string[] {
    const chosen = (p: Participant) => named === null || named.includes(p.dipId);
    return this.registry
      .participants()
      .filter((p) => p.dipId !== publisher.dipId && receivesOn(channel, p) && chosen(p) && this.settings.reachable(channel, p.dipId))
      .map((p) => p.dipId)
      .sort();
  }

  /**
   * The notice: a message of the published IF-047 (Notification of the Publication of a Downloadable
   * Asset), on whichever channel the publication is, so that it validates against the published egress
   * schema (DIPMessageEgressArray) as any message does: S0 IF-047, schema 011, event code [ISD]; P01 the
   * publication, one P02 distribution variant with the download URI; the channel, size, SHA-256 and the
   * rest of the metadata in additionalInformation as JSON (the one free field: every block of IF-047 admits
   * no field of OpenDIP's). A REP channel's own schema cannot carry it: P03, its one required block, is the
   * whole report inline, with no field for a URI (docs/api-differences.md).
   *
   * A withdrawal's notice is the same message about the same publication (the published schema has no
   * field for a withdrawal, and IF-047 no other event code), sent when it was withdrawn under a sender
   * reference of its own: additionalInformation says `withdrawn` {at, by: publisher|operator, reason}, the
   * distribution variant's description says so in words, and its URI answers 410 with the reason.
   */
  private notice(kind: PublicationNotice, channel: Channel, publisher: Pick<Participant, 'dipId' | 'roles'>, record: PublicationRecord, recipients: string[], queuedAt?: number): AcceptedBatch {
    const withdrawal = kind === 'withdrawal' ? record.withdrawn : undefined;
    const at = withdrawal?.at ?? record.publishedAt;
    const now = new Date(at);
    const role = publisher.roles.find((r) => this.publisherRoles(channel).includes(r)) ?? publisher.roles[0] ?? '';
    const transactionId = newTransactionId(channel.interfaceId, publisher.dipId, role, now);
    const stamp = dipDateTime(now);
    const published = dipDateTime(new Date(record.publishedAt));
    const reference = noticeReference(record, kind);
    const publicUri = this.publicUrl(record);
    const info = {
      publicationID: record.id,
      channel: channel.interfaceId,
      publicationType: record.publicationType,
      size: record.size,
      sha256: record.sha256,
      compression: record.compression,
      fileName: record.fileName,
      effectiveFrom: record.effectiveFrom,
      effectiveTo: record.effectiveTo,
      public: record.public,
      ...(publicUri ? { publicURI: publicUri } : {}),
      ...(withdrawal ? { withdrawn: { at: stamp, by: withdrawnBy(record), reason: withdrawal.reason } } : {}),
    };
    const description = withdrawal ? `Withdrawn by its ${withdrawnBy(record) === 'publisher' ? 'publisher' : 'DIP operator'}: ${withdrawal.reason}` : record.description;
    const outbound = {
      payload: {
        CommonBlock: {
          S0: { interfaceID: NOTICE_INTERFACE, schemaVersion: '011', eventCode: '[ISD]' },
          S1: {
            environmentTag: this.settings.environment,
            subText: null,
            senderUniqueReference: reference,
            senderTimestamp: stamp,
            senderDIPID: publisher.dipId,
            senderRoleID: role,
            senderCorrelationID: null,
            DIPConnectionProviderID: null,
          },
          A0: { primaryRecipients: [], secondaryRecipients: [], always: recipients },
          D0: { transactionID: transactionId, transactionTimestamp: stamp, publicationID: this.settings.channel(NOTICE_INTERFACE)?.publicationId ?? 'PUB-047', initialCorrelationID: null, replayIndicator: false, serviceTicketURL: null },
        },
        CustomBlock: {
          P01: { publicationDescription: clip(record.description ?? record.publicationType, 200), publicationVersionID: clip(record.version, 10), publicationDate: published },
          P02List: [
            {
              distributionVariantID: '001',
              distributionVariantName: clip(record.publicationType, 50),
              distributionVariantDescription: description === null ? null : clip(description, 200),
              distributionVariantVersionID: clip(record.version, 10),
              distributionVariantPublicationDate: published,
              distributionVariantFormat: clip(record.format.toUpperCase(), 10),
              distributionDeliveryFormat: record.compression === 'none' ? clip(record.format.toUpperCase(), 10) : clip(record.compression.toUpperCase(), 10),
              distributionDeliveryURI: this.downloadUrl(record),
              additionalInformation: JSON.stringify(info),
            },
          ],
        },
      },
    };
    return dipMadeBatch(
      // Received when queued: a notice queued after a restart starts its staleness clock then, not when the
      // publication was stored (it would be stale on arrival after a long outage).
      { channel: channel.interfaceId, senderDipId: publisher.dipId, senderRole: role, at: queuedAt ?? at, rawRequest: Buffer.from(JSON.stringify({ publication: record })), inForce: channel.securityPattern },
      [{ transactionId, eventCode: outbound.payload.CommonBlock.S0.eventCode, correlationId: null, outbound: JSON.stringify(outbound), recipients, senderUniqueReference: reference }],
    );
  }
}

const clip = (s: string, n: number): string => (s.length > n ? s.slice(0, n) : s);

function versionExists(existing: PublicationRecord): PublishOutcome {
  return {
    ok: false,
    status: 409,
    // The publication type and version are the publisher's unique reference for it: sent again, it is a
    // duplicate as a message's reused S1.senderUniqueReference is (a retry after a lost answer learns it is stored).
    message: MSG.duplicateReference,
    // The code's published meaning names messages' references: the help says what it means here, first.
    help: `publication version ${existing.version} of ${existing.publicationType} on ${existing.channel} is taken: published already (publication ${existing.id}, by ${existing.publisherDipId}${existing.withdrawn ? `, since withdrawn by ${withdrawnBy(existing) === 'publisher' ? 'its publisher' : 'the DIP operator'}` : ''}). MSG1006 here: a publication's type and version are its unique reference, as S1.senderUniqueReference is a message's, and are used once; publications are never overwritten: publish a new version`,
  };
}

function ownedByOther(channel: string, type: string, owner: string): PublishOutcome {
  // Not a schema failure: the generic code, the help saying whose the type is.
  return { ok: false, status: 409, message: MSG.processingFailed, help: `${type} on ${channel} is published by ${owner}: another publisher may not add versions to it; choose another publication type` };
}
