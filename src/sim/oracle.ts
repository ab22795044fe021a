import type { Catalogue } from '../catalogue/catalogue.js';
import { MODEL_SLOTS, MODEL_SLOT_NAMES, type MarketModel } from './market.js';

/**
 * The simulator's expectation of routing (its own reading of the published rules, not the DIP's code):
 *  - primary: the recipients the sender names in A0;
 *  - secondary (channels that take it): for each capacity of the MPAN with a role receiving on the
 *    channel, its holder on the addressing date (IF-021: the settlement day; others: the time of
 *    receipt) when that holder has such a role;
 *  - always: the participants the channel names to always receive it, and every holder of its always
 *    roles (by default the central ones that receive on it: MDS, LSS, …);
 *  - never the sender; one copy per recipient.
 */

/** Central services reached by "always" routing unless the operator says otherwise (OpenDIP's default). */
export const DEFAULT_CENTRAL_ROLES = ['MDS', 'LSS', 'EES', 'VAS', 'ISD', 'DCC', 'ECS'] as const;

/** Channels whose messages open a workflow: the DIP answers each with a new correlation ID (README "Routing"). */
export const DEFAULT_WORKFLOW_STARTERS = ['IF-015', 'IF-019', 'IF-025', 'IF-027', 'IF-031', 'IF-038'] as const;

export interface ChannelRules {
  interfaceId: string;
  publicationId: string;
  receiverRoles: string[];
  alwaysRoles: string[];
  /** Participants named to get every message on the channel (`alwaysParticipants`). */
  alwaysParticipants: string[];
  /** The DIP gives each message a workflow correlation ID. */
  workflowStarter: boolean;
  primary: boolean;
  secondary: boolean;
  /** IF-021 is addressed by its settlement day; everything else by the time of receipt. */
  addressedBySettlementDay: boolean;
}

/** Operator overrides of a channel's roles, as in dip.config.yaml `channels:`. */
export interface RoleOverride {
  receiverRoles?: string[];
  alwaysRoles?: string[];
  alwaysParticipants?: string[];
  workflowStarter?: boolean;
}

export function channelRules(catalogue: Catalogue, overrides: Record<string, RoleOverride> = {}): (channel: string) => ChannelRules {
  const cache = new Map<string, ChannelRules>();
  return (channel) => {
    const hit = cache.get(channel);
    if (hit) return hit;
    const def = catalogue.channel(channel);
    if (!def) throw new Error(`the catalogue has no channel ${channel}`);
    const o = overrides[def.interfaceId] ?? {};
    const receiverRoles = o.receiverRoles ?? [...def.receiverRoles];
    const rules: ChannelRules = {
      interfaceId: def.interfaceId,
      publicationId: def.publicationId,
      receiverRoles,
      alwaysRoles: o.alwaysRoles ?? receiverRoles.filter((r) => (DEFAULT_CENTRAL_ROLES as readonly string[]).includes(r)),
      alwaysParticipants: o.alwaysParticipants ?? [],
      workflowStarter: o.workflowStarter ?? (DEFAULT_WORKFLOW_STARTERS as readonly string[]).includes(def.interfaceId),
      primary: def.routingModes.includes('primary'),
      secondary: def.routingModes.includes('secondary'),
      addressedBySettlementDay: def.interfaceId === 'IF-021',
    };
    cache.set(channel, rules);
    return rules;
  };
}

export interface Prediction {
  primary: string[];
  secondary: string[];
  always: string[];
  /** Everyone who should get a copy. */
  recipients: string[];
}

export function predictRecipients(model: MarketModel, rules: ChannelRules, msg: { sender: string; primary: string[]; mpan: string | null; addressingMs: number }): Prediction {
  const primary = [...new Set(msg.primary)];
  const secondary: string[] = [];
  if (rules.secondary && msg.mpan !== null) {
    for (const slot of MODEL_SLOT_NAMES) {
      const wanted = MODEL_SLOTS[slot].filter((r) => rules.receiverRoles.includes(r));
      if (wanted.length === 0) continue;
      const holder = model.holder(msg.mpan, slot, msg.addressingMs);
      const role = holder === undefined ? undefined : model.role(holder);
      if (holder === undefined || role === undefined || !(wanted as readonly string[]).includes(role)) continue;
      if (holder !== msg.sender && !primary.includes(holder) && !secondary.includes(holder)) secondary.push(holder);
    }
  }
  const named = model.participants.filter((p) => rules.alwaysParticipants.includes(p.dipId));
  const always = [...new Set([...named, ...model.participants.filter((p) => rules.alwaysRoles.includes(p.role))].filter((p) => p.dipId !== msg.sender).map((p) => p.dipId))];
  const recipients = [...new Set([...primary, ...secondary, ...always])].filter((id) => id !== msg.sender);
  return { primary, secondary, always, recipients };
}

// ---------------------------------------------------------------------------------------------
// Checking what arrived against what was predicted

export type MismatchKind =
  | 'rejected'
  | 'missing'
  | 'unexpected'
  | 'duplicate'
  | 'bad-signature'
  | 'bad-d0'
  | 'bad-a0'
  | 'bad-content'
  | 'bad-correlation'
  | 'status-message'
  | 'lookup';

const KIND_ORDER: MismatchKind[] = ['rejected', 'lookup', 'missing', 'unexpected', 'bad-signature', 'duplicate', 'bad-correlation', 'bad-d0', 'bad-a0', 'bad-content', 'status-message'];

export interface Mismatch {
  kind: MismatchKind;
  /** The participant concerned (recipient, or sender for a rejection), with its label. */
  participant?: string;
  channel?: string;
  senderUniqueReference?: string;
  mpan?: string;
  detail: string;
}

export interface SentMessage {
  ref: string;
  channel: string;
  sender: string;
  mpan: string | null;
  /** Business meaning, for reports: e.g. "IF-021 2026-11-05 (late)". */
  note: string;
  prediction: Prediction;
  sentAt: number;
  state: 'pending' | 'accepted' | 'rejected';
  transactionId?: string;
  /**
   * Workflow correlation (spec 5.5.5): a starter expects the DIP to generate the ID; a follow-on carries
   * its workflow's in S1.senderCorrelationID. Absent: no workflow (the ID stays null).
   */
  workflow?: { starter: true } | { starter: false; correlationId: string };
  /** The correlationID the DIP answered in its 201. */
  answeredCorrelationId?: string | null;
}

/**
 * The correlation ID a message's copies must carry in D0.initialCorrelationID: the one the DIP generated
 * for a workflow starter, the workflow's for a follow-on, none otherwise.
 */
export function expectedCorrelationId(m: SentMessage): string | null {
  if (!m.workflow) return null;
  return m.workflow.starter ? (m.answeredCorrelationId ?? null) : m.workflow.correlationId;
}

/** What is wrong with the DIP's 201 for an accepted message, as far as its workflow goes (null: nothing). */
export function answeredCorrelationProblem(m: SentMessage): string | null {
  const answered = m.answeredCorrelationId ?? null;
  if (m.workflow?.starter) return typeof answered === 'string' && answered.length > 0 ? null : `the DIP answered the workflow's first message with correlationID ${JSON.stringify(answered)}, not a new workflow correlation ID`;
  if (m.workflow && answered !== m.workflow.correlationId) return `the DIP answered with correlationID ${JSON.stringify(answered)}, not the workflow's ${m.workflow.correlationId}`;
  return null;
}

export interface Delivery {
  recipient: string;
  message: Record<string, unknown>;
  receivedAt: number;
  signatureOk: boolean;
  signatureDetail: string;
}

type Json = Record<string, unknown>;

/** A field down a path of a delivered message, whatever its shape: the oracle judges what the DIP sent. */
const dig = (v: unknown, ...path: string[]): unknown => {
  let cur = v;
  for (const k of path) cur = typeof cur === 'object' && cur !== null ? (cur as Json)[k] : undefined;
  return cur;
};

/** A received field for a report: strings as they are, other values as JSON, absent as `absent`. */
const shown = (v: unknown, absent: string): string => (v === undefined || v === null ? absent : typeof v === 'string' ? v : JSON.stringify(v));

export const refOf = (m: unknown): string | undefined => {
  const r = dig(m, 'payload', 'CommonBlock', 'S1', 'senderUniqueReference');
  return typeof r === 'string' ? r : undefined;
};

/** Records what was sent and what arrived; `check()` compares them. */
export class DeliveryLedger {
  readonly sent = new Map<string, SentMessage>();
  readonly deliveries: Delivery[] = [];
  readonly statusDeliveries: Delivery[] = [];
  readonly extraMismatches: Mismatch[] = [];
  /** Deliveries of messages this run did not send (earlier runs, other traffic): reported, not judged. */
  foreign = 0;
  /** When the last message of any kind arrived (0: none yet). */
  lastDeliveryAt = 0;
  private readonly received = new Set<string>();
  private awaited: Set<string> | undefined;

  constructor(
    private readonly model: MarketModel,
    private readonly rules: (channel: string) => ChannelRules,
    /** Does this reference belong to this run (its unique suffix starts with the run ID)? */
    private readonly ours: (ref: string) => boolean,
  ) {}

  label(id: string): string {
    const p = this.model.byId.get(id);
    return p ? `${p.label} ${id}` : id;
  }

  expect(m: SentMessage): void {
    this.sent.set(m.ref, m);
  }

  /** Returns false for a delivery of a message this run did not send (counted in `foreign`). */
  record(d: Delivery, kind: 'business' | 'status'): boolean {
    this.lastDeliveryAt = Math.max(this.lastDeliveryAt, d.receivedAt);
    if (kind === 'status') {
      this.statusDeliveries.push(d);
      return true;
    }
    const ref = refOf(d.message);
    if (ref !== undefined && !this.ours(ref) && !this.sent.has(ref)) {
      this.foreign += 1;
      return false;
    }
    this.deliveries.push(d);
    if (ref !== undefined) {
      this.received.add(`${d.recipient}\u0000${ref}`);
      this.awaited?.delete(`${d.recipient}\u0000${ref}`);
    }
    return true;
  }

  /** Copies still awaited: accepted messages × predicted recipients not yet seen. */
  outstanding(): number {
    if (this.awaited) return this.awaited.size;
    let n = 0;
    for (const m of this.sent.values()) {
      if (m.state !== 'accepted') continue;
      for (const r of m.prediction.recipients) if (!this.received.has(`${r}\u0000${m.ref}`)) n++;
    }
    return n;
  }

  /** Once everything is sent: track the awaited copies as a set, so waiting costs nothing per poll. */
  freeze(): void {
    this.awaited = new Set();
    for (const m of this.sent.values()) {
      if (m.state !== 'accepted') continue;
      for (const r of m.prediction.recipients) {
        const key = `${r}\u0000${m.ref}`;
        if (!this.received.has(key)) this.awaited.add(key);
      }
    }
  }

  expectedCopies(): number {
    let n = 0;
    for (const m of this.sent.values()) if (m.state === 'accepted') n += m.prediction.recipients.length;
    return n;
  }

  latencies(): number[] {
    const out: number[] = [];
    for (const d of this.deliveries) {
      const ref = refOf(d.message);
      const m = ref === undefined ? undefined : this.sent.get(ref);
      if (m && m.prediction.recipients.includes(d.recipient)) out.push(d.receivedAt - m.sentAt);
    }
    return out;
  }

  check(): Mismatch[] {
    const out: Mismatch[] = [...this.extraMismatches];
    const seen = new Map<string, number>();
    for (const d of this.deliveries) {
      const ref = refOf(d.message);
      const channel = shown(dig(d.message, 'payload', 'CommonBlock', 'S0', 'interfaceID'), '?');
      const who = this.label(d.recipient);
      if (!d.signatureOk) out.push({ kind: 'bad-signature', participant: who, channel, senderUniqueReference: ref, detail: `the DIP's signature on the webhook call did not verify: ${d.signatureDetail}` });
      if (ref === undefined) {
        out.push({ kind: 'unexpected', participant: who, channel, detail: 'a delivered message carries no S1.senderUniqueReference' });
        continue;
      }
      const m = this.sent.get(ref);
      const key = `${d.recipient}\u0000${ref}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      if (!m || m.state !== 'accepted' || !m.prediction.recipients.includes(d.recipient)) {
        const why = !m
          ? 'this run never sent it'
          : m.state !== 'accepted'
            ? `it was ${m.state}, not accepted`
            : `expected only at ${m.prediction.recipients.map((r) => this.label(r)).join(', ') || 'nobody'}`;
        out.push({ kind: 'unexpected', participant: who, channel, senderUniqueReference: ref, mpan: m?.mpan ?? undefined, detail: `received ${m?.note ?? ref}, but ${why}` });
        continue;
      }
      if (seen.get(key) === 2) out.push({ kind: 'duplicate', participant: who, channel, senderUniqueReference: ref, mpan: m.mpan ?? undefined, detail: `${m.note} delivered more than once` });
      out.push(...this.checkCopy(d, m));
    }
    for (const m of this.sent.values()) {
      if (m.state !== 'accepted') continue;
      for (const r of m.prediction.recipients) {
        if (!seen.has(`${r}\u0000${m.ref}`)) {
          out.push({ kind: 'missing', participant: this.label(r), channel: m.channel, senderUniqueReference: m.ref, mpan: m.mpan ?? undefined, detail: `${m.note} from ${this.label(m.sender)} never arrived` });
        }
      }
    }
    for (const d of this.statusDeliveries) {
      const entry = d.message as Json;
      out.push({
        kind: 'status-message',
        participant: this.label(d.recipient),
        detail: `status message about ${shown(entry.transactionID, '?')}: ${shown(entry.message, '')} ${shown(entry.help, '')}`.trim(),
      });
    }
    // The most telling first: refusals, then routing (missing / unexpected), then the wrappers.
    return out.sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  }

  /** The copy's wrapper: D0 filled for this transaction, A0 listing the routing, the right MPAN and channel. */
  private checkCopy(d: Delivery, m: SentMessage): Mismatch[] {
    const out: Mismatch[] = [];
    const cb = (dig(d.message, 'payload', 'CommonBlock') ?? {}) as Json;
    const at = { participant: this.label(d.recipient), channel: m.channel, senderUniqueReference: m.ref, mpan: m.mpan ?? undefined };
    const rules = this.rules(m.channel);
    const d0 = cb.D0 as Json | undefined;
    const d0Problems: string[] = [];
    if (!d0 || typeof d0 !== 'object') d0Problems.push('D0 is absent');
    else {
      if (d0.transactionID !== m.transactionId) d0Problems.push(`D0.transactionID is ${JSON.stringify(d0.transactionID)}, the DIP answered ${m.transactionId ?? '?'}`);
      if (typeof d0.transactionTimestamp !== 'string' || d0.transactionTimestamp.length !== 25 || Number.isNaN(Date.parse(d0.transactionTimestamp))) {
        d0Problems.push(`D0.transactionTimestamp ${JSON.stringify(d0.transactionTimestamp)} is not a 25-character date-time`);
      }
      if (d0.publicationID !== rules.publicationId) d0Problems.push(`D0.publicationID is ${JSON.stringify(d0.publicationID)}, not ${rules.publicationId}`);
      if (d0.replayIndicator !== false) d0Problems.push(`D0.replayIndicator is ${JSON.stringify(d0.replayIndicator)}, not false`);
      for (const k of ['initialCorrelationID', 'serviceTicketURL']) if (!(k in d0)) d0Problems.push(`D0.${k} is missing`);
      const correlation = expectedCorrelationId(m);
      if ('initialCorrelationID' in d0 && (d0.initialCorrelationID ?? null) !== correlation) {
        out.push({ kind: 'bad-correlation', ...at, detail: `D0.initialCorrelationID is ${JSON.stringify(d0.initialCorrelationID)}, expected ${JSON.stringify(correlation)}${m.workflow ? ` (${m.workflow.starter ? 'the ID the DIP answered the workflow starter with' : "the workflow's"})` : ' (no workflow)'}` });
      }
    }
    if (d0Problems.length > 0) out.push({ kind: 'bad-d0', ...at, detail: d0Problems.join('; ') });

    const a0 = cb.A0 as Json | undefined;
    const list = (k: string): string[] | null => {
      const v = a0?.[k];
      return Array.isArray(v) ? v.map(String) : null;
    };
    const [pri, sec, alw] = [list('primaryRecipients'), list('secondaryRecipients'), list('always')];
    const a0Problems: string[] = [];
    const same = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));
    if (pri === null || sec === null || alw === null) a0Problems.push('A0 lacks primaryRecipients, secondaryRecipients or always');
    else {
      if (!same(pri, m.prediction.primary)) a0Problems.push(`A0.primaryRecipients ${JSON.stringify(pri)}, expected ${JSON.stringify(m.prediction.primary)}`);
      if (!same(sec, m.prediction.secondary)) a0Problems.push(`A0.secondaryRecipients ${JSON.stringify(sec)}, expected ${JSON.stringify(m.prediction.secondary)}`);
      // The DIP may know always-role holders outside this simulated market: ours must be among them.
      const absent = m.prediction.always.filter((id) => !alw.includes(id));
      if (absent.length > 0) a0Problems.push(`A0.always ${JSON.stringify(alw)} lacks ${JSON.stringify(absent)}`);
    }
    if (a0Problems.length > 0) out.push({ kind: 'bad-a0', ...at, detail: a0Problems.join('; ') });

    const content: string[] = [];
    const [interfaceId, senderDipId, mpanCore] = [dig(cb, 'S0', 'interfaceID'), dig(cb, 'S1', 'senderDIPID'), dig(cb, 'M0', 'MPANCore')];
    if (interfaceId !== m.channel) content.push(`S0.interfaceID is ${JSON.stringify(interfaceId)}`);
    if (senderDipId !== m.sender) content.push(`S1.senderDIPID is ${JSON.stringify(senderDipId)}`);
    if (m.mpan !== null && mpanCore !== m.mpan) content.push(`M0.MPANCore is ${JSON.stringify(mpanCore)}, sent ${m.mpan}`);
    const sentCorrelation = m.workflow && !m.workflow.starter ? m.workflow.correlationId : null;
    const senderCorrelation = dig(cb, 'S1', 'senderCorrelationID') ?? null;
    if (senderCorrelation !== sentCorrelation) content.push(`S1.senderCorrelationID is ${JSON.stringify(senderCorrelation)}, sent ${JSON.stringify(sentCorrelation)}`);
    if (content.length > 0) out.push({ kind: 'bad-content', ...at, detail: content.join('; ') });
    return out;
  }
}

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}
