/**
 * `dip simulate`: a simulated market that exercises a DIP end to end (spec 5.13.3 c, test tools that
 * simulate participants) and checks it.
 *
 * Every participant is real as far as the DIP can tell: its own certificate, API key, signed calls
 * over mutual TLS and a webhook receiver that verifies the DIP's signature. The business flows follow
 * the spec's processes (3.4.1): the initial MPAN lookup load, daily consumption (BP005, IF-021), a
 * change of supplier (BP001/BP002: IF-001, IF-002; BP02: IF-036 DSAppActive) and consumption after it,
 * including late data for a day before the change. The simulator predicts every message's recipients
 * from its own market model and checks that each participant got exactly what it should.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { request } from 'undici';
import { onboardParticipant } from '../pipeline/participants.js';
import { openBackend } from '../adapters/backend.js';
import { loadConfig } from '../config.js';
import { Catalogue } from '../catalogue/catalogue.js';
import { DipClient } from '../client/dip-client.js';
import { startWebhookReceiver, type ReceivedCall, type WebhookReceiver } from '../client/webhook-receiver.js';
import { issueParticipantCertificate, issueServerCertificate, type KeyAndCert } from '../security/pki.js';
import { certificateInfo } from '../security/signature.js';
import { buildIF021 } from './messages.js';
import {
  buildMarket,
  initialLoadCsv,
  initialLoadRows,
  isSimRole,
  plannedParticipants,
  type MarketModel,
  type ModelSlot,
  type SimParticipant,
  type SimRole,
} from './market.js';
import {
  buildIF031DataServiceRequest,
  buildIF032InitialResponse,
  buildIF033ServiceProviderRequest,
  buildIF034ServiceProviderResponse,
  buildIF035AppointmentStatus,
  buildIF036AppointmentActive,
  buildIF037DataServiceDeAppointment,
} from './appointment.js';
import { answeredCorrelationProblem, channelRules, DeliveryLedger, percentile, predictRecipients, type Mismatch, type RoleOverride, type SentMessage } from './oracle.js';
import { buildIF001ChangeOfSupplier, buildIF002GainMpanInfo, buildIF036DataServiceActive, type CommonOptions } from './registration.js';

const DAY_MS = 86_400_000;

/** A pre-onboarded market (`--market FILE`). Relative paths are relative to the file. */
export interface MarketFile {
  participants: Array<{
    /** One of SUP, REGS, SDS, ADS, MSS, LDSO, MDS, LSS. */
    role: string;
    /** Folder with key.pem, cert.pem and api-key (as `dip pki issue` and `dip participant add --save` leave it). */
    credentials: string;
    /** Default: the DIP ID the certificate is bound to. */
    dipId?: string;
  }>;
  /** Optional: the DIP's operator API, to load the MPAN lookup and watch it learn changes. */
  admin?: { url: string; token?: string; tokenFile?: string };
}

export interface SimulateOptions {
  /** The DIP API endpoint, e.g. https://localhost:8443. */
  url: string;
  /** CA of the DIP's server certificate and signing certificate. */
  caPem: string;
  /**
   * OpenDIP's data directory on this machine: the simulator issues its participants' certificates from
   * <dataDir>/pki/ca.*.pem and onboards them in <dataDir>/dip.db. Either this or `market`.
   */
  dataDir?: string;
  market?: MarketFile;
  /** Folder `market`'s relative paths are relative to. */
  marketDir?: string;
  /** The operator API (MPAN lookup load and checks), e.g. http://127.0.0.1:8444, and its bearer token. */
  admin?: { url: string; token: string };
  suppliers?: number;
  mpans?: number;
  /** Settlement days simulated, at least 2: the change of supplier takes effect half-way through. */
  days?: number;
  dataServices?: number;
  meteringServices?: number;
  ldsos?: number;
  /** First settlement day (UTC, YYYY-MM-DD); default `days` days before today. */
  startDate?: string;
  /** Share of MPANs that change supplier (default 20). */
  switchPercent?: number;
  /** Share of the other MPANs whose supplier runs the data service appointment workflow (default 20). */
  appointPercent?: number;
  /** Decides the MPANs and their appointments; random by default. */
  seed?: string;
  /** S1.environmentTag (default DEV). */
  envTag?: string;
  /** Receivers listen here (default 127.0.0.1) ... */
  listenHost?: string;
  /** ... on consecutive ports from this range (default: any free port). */
  ports?: { from: number; to: number };
  /** Host put in the webhook URLs when the DIP reaches the receivers by another name. */
  callbackHost?: string;
  /** Receivers serve HTTPS with this key and certificate (the DIP must trust its issuer). */
  receiverTls?: { key: string; cert: string };
  /**
   * Data-dir mode without `receiverTls`: serve HTTPS with a certificate the simulator issues from the
   * DIP's CA. Default: outside DEV (where the DIP refuses plain http callbacks).
   */
  receiverHttps?: boolean;
  /** Messages per submission (default 100). */
  batchSize?: number;
  /** Submissions in flight at once (default 8). */
  concurrency?: number;
  /** How long to wait for every expected copy (default 60 s) ... */
  deliveryTimeoutMs?: number;
  /** ... or until nothing at all has arrived for this long (default 10 s). */
  idleTimeoutMs?: number;
  /** After the last expected copy, how long to keep listening for unexpected ones (default 500 ms). */
  graceMs?: number;
  /** Without the operator API: pause after registration messages so the lookup learns them (default 2 s). */
  settleMs?: number;
  /** Two upper-case hex digits starting the simulator's own DIP IDs (data-dir mode; default A5). */
  idPrefix?: string;
  /** The DIP's per-channel role overrides (dip.config.yaml `channels:`), if any. */
  channelOverrides?: Record<string, RoleOverride>;
  catalogue?: Catalogue;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Test hook: change the model after the lookup was loaded (to prove the checker notices). */
  tamper?: (model: MarketModel) => void;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface SimulationReport {
  ok: boolean;
  seed: string;
  runId: string;
  mode: 'data-dir' | 'market';
  participants: SimParticipant[];
  mpans: number;
  switched: number;
  /** Appointment workflows (IF-031 … IF-037): requested, then accepted or rejected by the data service. */
  appointments: { requested: number; accepted: number; rejected: number };
  days: string[];
  changeOfSupplierFrom: string;
  sent: number;
  accepted: number;
  rejected: number;
  expectedCopies: number;
  delivered: number;
  /** Deliveries of messages this run did not send (earlier runs): counted, not judged. */
  foreign: number;
  byChannel: Record<string, { sent: number; accepted: number; delivered: number }>;
  mismatches: Mismatch[];
  latencyMs: LatencySummary;
  durationMs: number;
}

interface Party extends SimParticipant {
  client: DipClient;
  receiver?: WebhookReceiver;
  /** scheme://host:port the DIP calls this participant's receiver at. */
  base?: string;
  /** Channels whose webhook the simulator set (and removes at the end). */
  hooks: string[];
  statusHook?: boolean;
}

interface AnswerBody {
  messageArray?: Array<{ transactionID?: string | null; senderUniqueReference?: string | null; correlationID?: string | null; message?: string; help?: string | null }>;
}

interface Outgoing {
  item: unknown;
  meta: Omit<SentMessage, 'sentAt' | 'state' | 'transactionId'>;
}

const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pool<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const results = new Array<T>(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, tasks.length)) }, worker));
  return results;
}

/**
 * Runs the whole simulation against a DIP and returns what it found. What the DIP does wrong is reported
 * as mismatches; it throws only when it cannot set the market up (onboarding, webhooks, operator API).
 */
export async function runSimulation(o: SimulateOptions): Promise<SimulationReport> {
  const started = Date.now();
  const log = o.log ?? (() => {});
  if (!o.dataDir === !o.market) throw new Error('give either a data directory (--data-dir) or a market file (--market)');
  const days = o.days ?? 2;
  if (!Number.isInteger(days) || days < 2) throw new Error('--days must be at least 2 (the change of supplier takes effect half-way through)');
  const switchPercent = o.switchPercent ?? 20;
  if (!(switchPercent >= 0 && switchPercent <= 100)) throw new Error(`--switch-percent must be between 0 and 100, not ${o.switchPercent}`);
  const appointPercent = o.appointPercent ?? 20;
  if (!(appointPercent >= 0 && appointPercent <= 100)) throw new Error(`--appoint-percent must be between 0 and 100, not ${o.appointPercent}`);
  const catalogue = o.catalogue ?? Catalogue.load();
  const rules = channelRules(catalogue, o.channelOverrides);
  const seed = o.seed ?? randomBytes(4).toString('hex');
  const runId = `r${randomBytes(3).toString('hex')}`;
  const env = o.envTag ?? 'DEV';
  const batchSize = o.batchSize ?? 100;
  const concurrency = o.concurrency ?? 8;

  // The calendar: settlement days D1..Dn; the change of supplier takes effect on D(k+1).
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  const firstDay = o.startDate ? Date.parse(`${o.startDate}T00:00:00Z`) : today - days * DAY_MS;
  if (Number.isNaN(firstDay)) throw new Error(`--start-date '${o.startDate ?? ''}' is not YYYY-MM-DD`);
  const dayList = Array.from({ length: days }, (_, i) => firstDay + i * DAY_MS);
  const k = Math.ceil(days / 2);
  const preDays = dayList.slice(0, k);
  const postDays = dayList.slice(k);
  const effectiveFrom = dayList[k]!;
  const lateDay = dayList[k - 1]!;

  // ---- Participants and the market model
  const parties: Party[] = [];
  let counter = 0;
  const suffix = (kind: string) => `${runId}${kind}${(++counter).toString(36)}`;
  const ours = (ref: string) => (ref.split('-').at(-1) ?? '').startsWith(runId);
  let model: MarketModel | undefined;
  let ledger: DeliveryLedger | undefined;
  const counts = { sent: 0, accepted: 0, rejected: 0 };
  const appointments = { requested: 0, accepted: 0, rejected: 0 };
  const byChannel: SimulationReport['byChannel'] = {};
  // eslint-disable-next-line local/no-dynamic-key-write -- c is a channel ID from the simulator's own traffic
  const chan = (c: string) => (byChannel[c] ??= { sent: 0, accepted: 0, delivered: 0 });

  try {
    const t0 = Date.now();
    if (o.dataDir) {
      const size = { suppliers: o.suppliers ?? 3, dataServices: o.dataServices ?? 2, meteringServices: o.meteringServices ?? 2, ldsos: o.ldsos ?? 2 };
      const planned = plannedParticipants(size, o.idPrefix ?? 'A5');
      parties.push(...(await onboardAll(o.dataDir, planned, env, o.url, o.caPem)));
      log(`[setup] ${parties.length} participants onboarded in ${o.dataDir} (${describeRoles(parties)})`);
    } else {
      parties.push(...openMarket(o.market!, o.marketDir ?? process.cwd(), o.url, o.caPem));
      log(`[setup] ${parties.length} pre-onboarded participants from the market file (${describeRoles(parties)})`);
    }
    const participants: SimParticipant[] = parties.map(({ dipId, role, label }) => ({ dipId, role, label }));
    model = buildMarket(participants, { mpans: o.mpans ?? 100, switchPercent, appointPercent, seed });
    const m = model;
    const led = new DeliveryLedger(m, rules, ours);
    ledger = led;
    const switching = m.mpans.filter((x) => x.changeOfSupplier !== null);
    log(`[setup] seed ${seed}, run ${runId}: ${m.mpans.length} MPANs in ${new Set(m.mpans.map((x) => x.gspGroup)).size} GSP groups, ${switching.length} to change supplier from ${isoDay(effectiveFrom)}`);

    // ---- Receivers and webhooks
    const host = o.listenHost ?? '127.0.0.1';
    if (o.ports && o.ports.to - o.ports.from + 1 < parties.length) {
      throw new Error(`--ports ${o.ports.from}-${o.ports.to} holds ${o.ports.to - o.ports.from + 1} ports; ${parties.length} receivers need one each`);
    }
    const publicHost = o.callbackHost ?? (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
    let tls = o.receiverTls;
    if (!tls && o.dataDir && (o.receiverHttps ?? env !== 'DEV')) {
      const isIp = /^[\d.]+$/.test(publicHost) || publicHost.includes(':');
      const issued = await issueServerCertificate(readDipCa(o.dataDir), {
        hostnames: [...new Set(['localhost', ...(isIp ? [] : [publicHost])])],
        ipAddresses: [...new Set(['127.0.0.1', ...(isIp ? [publicHost] : [])])],
        validDays: 7,
      });
      tls = { key: issued.keyPem, cert: issued.certPem };
    }
    for (const [i, p] of parties.entries()) {
      const port = o.ports ? o.ports.from + i : 0;
      const probe = await startWebhookReceiver({ host, port, tls, trustedCas: [o.caPem], respond: (call) => onCall(p, call) });
      const actual = new URL(probe.url);
      p.receiver = probe;
      // The DIP signs the URL it calls: the receiver checks against what was registered.
      p.base = `${actual.protocol}//${publicHost.includes(':') ? `[${publicHost}]` : publicHost}:${actual.port}`;
    }
    function onCall(p: Party, call: ReceivedCall): number {
      const detail = call.signature.ok ? '' : `${call.signature.reason}: ${call.signature.detail}`;
      for (const msg of call.messages) {
        const isBusiness = typeof msg === 'object' && msg !== null && 'payload' in msg;
        const d = { recipient: p.dipId, message: msg as Record<string, unknown>, receivedAt: call.receivedAt, signatureOk: call.signature.ok, signatureDetail: detail };
        const ours = led.record(d, isBusiness ? 'business' : 'status');
        const ch = (msg as { payload?: { CommonBlock?: { S0?: { interfaceID?: string } } } }).payload?.CommonBlock?.S0?.interfaceID;
        if (ours && isBusiness && typeof ch === 'string') chan(ch).delivered += 1;
      }
      // A bad signature is recorded above and refused, as a real recipient would.
      return call.signature.ok ? 200 : 401;
    }
    let hooks = 0;
    const hookProblems: string[] = [];
    await pool(
      parties.map((p) => async () => {
        const base = p.base!;
        await untilKnown(p, () => p.client.setStatusWebhook(p.dipId, { callbackURL: `${base}/status` }));
        p.statusHook = true;
        for (const def of catalogue.channels()) {
          if (!rules(def.interfaceId).receiverRoles.includes(p.role)) continue;
          const a = await p.client.setWebhook(def.interfaceId, p.dipId, { callbackURL: `${base}/${def.interfaceId}` });
          if (a.status === 201) {
            hooks += 1;
            p.hooks.push(def.interfaceId);
          }
          else hookProblems.push(`${p.label} ${def.interfaceId}: ${a.status}`);
        }
      }),
      concurrency,
    );
    const ports = parties.map((p) => Number(new URL(p.receiver!.url).port));
    log(`[setup] ${parties.length} webhook receivers (${tls ? 'https' : 'http'}) on ${host}:${Math.min(...ports)}-${Math.max(...ports)}; ${hooks} channel webhooks and ${parties.length} status webhooks set (${secs(Date.now() - t0)})`);
    if (hookProblems.length > 0) log(`[setup] warning: the DIP refused ${hookProblems.length} webhook(s): ${hookProblems.slice(0, 5).join(', ')}${hookProblems.length > 5 ? ', …' : ''}`);

    // ---- Sending, with prediction first
    const bySender = (list: Outgoing[]) => {
      const groups = new Map<string, Outgoing[]>();
      for (const x of list) groups.set(x.meta.sender, [...(groups.get(x.meta.sender) ?? []), x]);
      const batches: Outgoing[][] = [];
      for (const g of groups.values()) for (let i = 0; i < g.length; i += batchSize) batches.push(g.slice(i, i + batchSize));
      return batches;
    };
    const send = async (channel: string, list: Outgoing[]): Promise<{ sent: number; accepted: number }> => {
      const before = { ...counts };
      await pool(bySender(list).map((batch) => () => submit(channel, batch)), concurrency);
      return { sent: counts.sent - before.sent, accepted: counts.accepted - before.accepted };
    };
    const submit = async (channel: string, batch: Outgoing[]): Promise<void> => {
      const sender = parties.find((p) => p.dipId === batch[0]!.meta.sender)!;
      for (const x of batch) {
        const v = catalogue.validate(channel, x.item);
        if (!v.ok) throw new Error(`simulator bug: a generated ${channel} message does not validate: ${v.errors.slice(0, 3).map((e) => `${e.path} ${e.message}`).join('; ')}`);
      }
      const sentAt = Date.now();
      const records = batch.map((x): SentMessage => ({ ...x.meta, sentAt, state: 'pending' }));
      for (const r of records) led.expect(r);
      counts.sent += batch.length;
      chan(channel).sent += batch.length;
      let status = 0;
      let body: AnswerBody | null = null;
      let failure = '';
      try {
        const answer = await sender.client.submit(channel, batch.map((x) => x.item));
        status = answer.status;
        body = answer.body;
      } catch (e) {
        failure = (e as Error).message;
      }
      const entries = body?.messageArray ?? [];
      for (const r of records) {
        const entry = entries.find((e) => e.senderUniqueReference === r.ref);
        if (status === 201 && entry?.transactionID) {
          r.state = 'accepted';
          r.transactionId = entry.transactionID;
          r.answeredCorrelationId = entry.correlationID ?? null;
          counts.accepted += 1;
          chan(channel).accepted += 1;
          const wrong = answeredCorrelationProblem(r);
          if (wrong) led.extraMismatches.push({ kind: 'bad-correlation', participant: led.label(r.sender), channel, senderUniqueReference: r.ref, mpan: r.mpan ?? undefined, detail: `${r.note}: ${wrong}` });
        } else {
          r.state = 'rejected';
          counts.rejected += 1;
          const why = failure || `${status} ${entry?.message ?? entries[0]?.message ?? ''} ${entry?.help ?? entries[0]?.help ?? ''}`.trim();
          led.extraMismatches.push({ kind: 'rejected', participant: led.label(r.sender), channel, senderUniqueReference: r.ref, mpan: r.mpan ?? undefined, detail: `${r.note}: ${why}` });
        }
      }
    };
    const accepted = (ref: string) => led.sent.get(ref)?.state === 'accepted';

    const if021 = (mpan: string, day: number, note: string): Outgoing => {
      const ds = m.holder(mpan, 'DS', day);
      const ldso = m.holder(mpan, 'LDSO', day);
      const role = ds === undefined ? undefined : m.role(ds);
      if (!ds || !ldso || !role) throw new Error(`the model has no data service or distributor for ${mpan} on ${isoDay(day)}`);
      const item = buildIF021({ senderDipId: ds, senderRole: role, mpan, distributorDipId: ldso, settlementDate: isoDay(day), uniqueSuffix: suffix('c'), envTag: env });
      const ref = item.payload.CommonBlock.S1.senderUniqueReference;
      return { item, meta: { ref, channel: 'IF-021', sender: ds, mpan, note: `IF-021 ${mpan} ${isoDay(day)}${note}`, prediction: predictRecipients(m, rules('IF-021'), { sender: ds, primary: [], mpan, addressingMs: day }) } };
    };
    const regs = m.ofRole('REGS')[0]!.dipId;
    /**
     * A registration-process message about an MPAN, from the registration service unless `from` says
     * otherwise; `correlationId` makes it a follow-on of that workflow, `starter` the workflow's first.
     */
    const registration = (
      channel: string,
      mpan: string,
      primary: string[],
      build: (common: CommonOptions & { primaryRecipients: string[]; now: Date }) => unknown,
      note: string,
      from: { dipId: string; role: string } = { dipId: regs, role: 'REGS' },
      workflow?: SentMessage['workflow'],
    ): Outgoing => {
      const now = new Date();
      const ldso = m.holder(mpan, 'LDSO', now.getTime()) ?? m.holder(mpan, 'LDSO', effectiveFrom)!;
      const correlationId = workflow && !workflow.starter ? workflow.correlationId : null;
      const item = build({ senderDipId: from.dipId, senderRole: from.role, mpan, distributorDipId: ldso, primaryRecipients: primary, correlationId, uniqueSuffix: suffix('r'), envTag: env, now });
      const ref = (item as { payload: { CommonBlock: { S1: { senderUniqueReference: string } } } }).payload.CommonBlock.S1.senderUniqueReference;
      // Registration channels are addressed at the time of receipt.
      const prediction = predictRecipients(m, rules(channel), { sender: from.dipId, primary, mpan, addressingMs: now.getTime() });
      return { item, meta: { ref, channel, sender: from.dipId, mpan, note, prediction, ...(workflow ? { workflow } : {}) } };
    };

    // ---- 1. The initial MPAN lookup
    let t = Date.now();
    const load = initialLoadRows(m);
    if (o.admin) {
      for (let i = 0; i < load.length; i += 5000) {
        await adminCall(o.admin, 'POST', '/admin/mpan/changes', load.slice(i, i + 5000).map((r) => ({ kind: 'appoint', ...r })));
      }
      log(`[1 MPAN lookup] ${load.length} appointments (supplier, distributor, data and metering service) of ${m.mpans.length} MPANs loaded through the admin API (${secs(Date.now() - t)})`);
    } else {
      log(`[1 MPAN lookup] no operator API: assuming the operator preloaded the ${load.length} appointments (dip simulate … --write-mpan-load FILE; dip mpan load FILE)`);
    }
    o.tamper?.(m);

    // ---- 2. Daily consumption before the change of supplier
    for (const day of preDays) {
      t = Date.now();
      // Switched MPANs' data for the last day before the change is held back: it comes late, after it.
      const list = m.mpans.filter((x) => !(x.changeOfSupplier && day === lateDay)).map((x) => if021(x.core, day, ''));
      const r = await send('IF-021', list);
      const held = day === lateDay ? `, ${switching.length} held back to arrive late` : '';
      log(`[2 consumption] settlement day ${isoDay(day)}: ${r.sent} IF-021 (48 periods each) from the data services, ${r.accepted} accepted${held} (${secs(Date.now() - t)})`);
    }

    // ---- 3. Change of supplier
    if (switching.length > 0) {
      t = Date.now();
      // Registration carries one correlation ID of its own through each switch's IF-001, IF-002 and IF-036
      // (S1.senderCorrelationID), so the DIP's business-process report links them as one process.
      const switchIds = new Map(switching.map((x) => [x.core, `COS-${suffix('w')}`]));
      const ofSwitch = (core: string): SentMessage['workflow'] => ({ starter: false, correlationId: switchIds.get(core)! });
      const cos = switching.map((x) => {
        const incoming = x.changeOfSupplier!.incomingSupplier;
        const outgoing = m.holder(x.core, 'SUP', effectiveFrom - 1)!;
        return registration('IF-001', x.core, [incoming], (c) => buildIF001ChangeOfSupplier({ ...c, incomingSupplierDipId: incoming, outgoingSupplierDipId: outgoing, effectiveFrom: new Date(effectiveFrom) }), `IF-001 ChangeOfSupplier ${x.core} ${outgoing}→${incoming}`, undefined, ofSwitch(x.core));
      });
      const r1 = await send('IF-001', cos);
      const learnt = switching.filter((x) => accepted(cos.find((c) => c.meta.mpan === x.core)!.meta.ref));
      await awaitLookup(learnt.map((x) => ({ mpan: x.core, slot: 'SUP', dipId: x.changeOfSupplier!.incomingSupplier, fromMs: effectiveFrom })));
      for (const x of learnt) m.appoint(x.core, 'SUP', x.changeOfSupplier!.incomingSupplier, effectiveFrom);
      const gain = switching.map((x) => registration('IF-002', x.core, [x.changeOfSupplier!.incomingSupplier], (c) => buildIF002GainMpanInfo(c), `IF-002 GainMPANInfo ${x.core}`, undefined, ofSwitch(x.core)));
      const r2 = await send('IF-002', gain);
      const app = switching.map((x) =>
        registration('IF-036', x.core, [x.changeOfSupplier!.newDataService], (c) => buildIF036DataServiceActive({ ...c, supplierDipId: x.changeOfSupplier!.incomingSupplier, dataServiceDipId: x.changeOfSupplier!.newDataService, effectiveFrom: new Date(effectiveFrom) }), `IF-036 DSAppActive ${x.core} ${x.changeOfSupplier!.newDataService}`, undefined, ofSwitch(x.core)),
      );
      const r3 = await send('IF-036', app);
      const appointed = switching.filter((x) => accepted(app.find((c) => c.meta.mpan === x.core)!.meta.ref));
      await awaitLookup(appointed.map((x) => ({ mpan: x.core, slot: 'DS', dipId: x.changeOfSupplier!.newDataService, fromMs: effectiveFrom })));
      for (const x of appointed) m.appoint(x.core, 'DS', x.changeOfSupplier!.newDataService, effectiveFrom);
      const changedDs = appointed.filter((x) => m.holder(x.core, 'DS', effectiveFrom - 1) !== x.changeOfSupplier!.newDataService).length;
      log(`[3 change of supplier] from ${isoDay(effectiveFrom)}: ${r1.accepted}/${r1.sent} IF-001, ${r2.accepted}/${r2.sent} IF-002, ${r3.accepted}/${r3.sent} IF-036 accepted; ${changedDs} MPANs get a new data service; ${o.admin ? 'the DIP\'s lookup learnt them' : `waited ${secs(o.settleMs ?? 2000)} twice for the DIP's lookup to learn them`} (${secs(Date.now() - t)})`);
    } else {
      log('[3 change of supplier] skipped: needs two suppliers and --switch-percent above 0');
    }

    // ---- 4. The data service appointment workflow, effective from the same day
    const flows = m.mpans
      .filter((x) => x.appointment !== null)
      .map((x) => {
        const now = Date.now();
        return { core: x.core, supplier: m.holder(x.core, 'SUP', now)!, previous: m.holder(x.core, 'DS', now)!, next: x.appointment!.newDataService, accept: x.appointment!.accept, correlationId: null as string | null, ok: true };
      })
      // The sender reference pattern embeds the sender's DIP ID as 10 hex digits: only such suppliers can ask.
      .filter((f) => /^[0-9a-f]{10}$/i.test(f.supplier));
    if (flows.length > 0) {
      t = Date.now();
      const from = new Date(effectiveFrom);
      const step = async (channel: string, list: typeof flows, make: (f: (typeof flows)[number]) => Outgoing): Promise<void> => {
        const out = list.map((f) => ({ f, x: make(f) }));
        await send(channel, out.map((o) => o.x));
        for (const o of out) if (!accepted(o.x.meta.ref)) o.f.ok = false;
      };
      const live = () => flows.filter((f) => f.ok);
      const follow = (f: (typeof flows)[number]): SentMessage['workflow'] => (f.correlationId === null ? undefined : { starter: false, correlationId: f.correlationId });
      const opts = (f: (typeof flows)[number]) => ({ supplierDipId: f.supplier, proposedDipId: f.next, effectiveFrom: from });
      const what = (f: (typeof flows)[number]) => `${f.core} ${f.previous}→${f.next}`;
      // IF-031 opens the workflow: the DIP answers it with the workflow correlation ID the rest carry.
      const starter = rules('IF-031').workflowStarter;
      const requests = flows.map((f) => ({
        f,
        x: registration('IF-031', f.core, [regs], (c) => buildIF031DataServiceRequest({ ...c, ...opts(f) }), `IF-031 DSApp ${what(f)}`, { dipId: f.supplier, role: 'SUP' }, starter ? { starter: true } : undefined),
      }));
      await send('IF-031', requests.map((r) => r.x));
      for (const { f, x } of requests) {
        const sent = led.sent.get(x.meta.ref)!;
        f.ok = sent.state === 'accepted';
        f.correlationId = starter ? (sent.answeredCorrelationId ?? null) : null;
      }
      await step('IF-032', live(), (f) => registration('IF-032', f.core, [f.supplier], (c) => buildIF032InitialResponse({ ...c, ...opts(f) }), `IF-032 DSAppInitialResp ${what(f)}`, undefined, follow(f)));
      await step('IF-033', live(), (f) => registration('IF-033', f.core, [f.next], (c) => buildIF033ServiceProviderRequest({ ...c, ...opts(f) }), `IF-033 DSAppSPRequest ${what(f)}`, undefined, follow(f)));
      await step('IF-034', live(), (f) =>
        registration('IF-034', f.core, [regs], (c) => buildIF034ServiceProviderResponse({ ...c, ...opts(f), accept: f.accept }), `IF-034 DSAppSPResponse ${f.accept ? 'accepted' : 'rejected'} ${what(f)}`, { dipId: f.next, role: m.role(f.next)! }, follow(f)),
      );
      await step('IF-035', live(), (f) => registration('IF-035', f.core, [f.supplier, f.next], (c) => buildIF035AppointmentStatus({ ...c, ...opts(f), accept: f.accept }), `IF-035 DSApp${f.accept ? 'Accepted' : 'Rejected'} ${what(f)}`, undefined, follow(f)));
      const appointing = live().filter((f) => f.accept);
      await step('IF-036', appointing, (f) => registration('IF-036', f.core, [f.next], (c) => buildIF036AppointmentActive({ ...c, ...opts(f) }), `IF-036 DSAppActive ${what(f)}`, undefined, follow(f)));
      const active = appointing.filter((f) => f.ok);
      await awaitLookup(active.map((f) => ({ mpan: f.core, slot: 'DS', dipId: f.next, fromMs: effectiveFrom })));
      for (const f of active) m.appoint(f.core, 'DS', f.next, effectiveFrom);
      // The de-appointment is routed with the new data service already in the lookup (secondary) and the old one named.
      await step('IF-037', active, (f) => registration('IF-037', f.core, [f.previous], (c) => buildIF037DataServiceDeAppointment({ ...c, ...opts(f), previousDipId: f.previous }), `IF-037 DSDeApp ${what(f)}`, undefined, follow(f)));
      await awaitLookup(active.filter((f) => f.ok).map((f) => ({ mpan: f.core, slot: 'DS', dipId: f.previous, toMs: effectiveFrom - 1000 })));
      appointments.requested = flows.length;
      appointments.accepted = active.filter((f) => f.ok).length;
      appointments.rejected = live().filter((f) => !f.accept).length;
      log(`[4 appointment workflow] ${flows.length} suppliers asked for another data service (IF-031${starter ? ', each answered with a workflow correlation ID' : ''}); IF-032 … IF-035 under it; ${appointments.accepted} accepted, appointed from ${isoDay(effectiveFrom)} (IF-036) and the previous data service de-appointed (IF-037); ${appointments.rejected} rejected (${secs(Date.now() - t)})`);
    } else {
      log('[4 appointment workflow] skipped: needs two data services and --appoint-percent above 0');
    }

    // ---- 5. Consumption after the change, and late data for the day before it
    for (const day of postDays) {
      t = Date.now();
      const r = await send('IF-021', m.mpans.map((x) => if021(x.core, day, x.changeOfSupplier ? ' (after the change of supplier)' : x.appointment?.accept ? ' (from the newly appointed data service)' : '')));
      log(`[5 after the change] settlement day ${isoDay(day)}: ${r.sent} IF-021, ${r.accepted} accepted (${secs(Date.now() - t)})`);
    }
    if (switching.length > 0) {
      t = Date.now();
      const r = await send('IF-021', switching.map((x) => if021(x.core, lateDay, ' (late, for the day before the change of supplier)')));
      log(`[5 after the change] late data for ${isoDay(lateDay)}: ${r.sent} IF-021 from the old data services, ${r.accepted} accepted (${secs(Date.now() - t)})`);
    }

    // ---- 6. Wait for every expected copy, then a little longer for unexpected ones
    t = Date.now();
    led.freeze();
    const expected = led.expectedCopies();
    log(`[6 check] waiting for ${expected} expected deliveries …`);
    const deadline = Date.now() + (o.deliveryTimeoutMs ?? 60_000);
    const idleMs = o.idleTimeoutMs ?? 10_000;
    let lastReport = Date.now();
    while (led.outstanding() > 0 && Date.now() < deadline) {
      if (Date.now() - Math.max(t, led.lastDeliveryAt) > idleMs) {
        log(`[6 check] nothing arrived for ${secs(idleMs)}: giving up on the rest`);
        break;
      }
      await sleep(20);
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        log(`[6 check] … ${expected - led.outstanding()}/${expected} so far`);
      }
    }
    await sleep(o.graceMs ?? 500);
    log(`[6 check] ${expected - led.outstanding()}/${expected} expected deliveries arrived (${secs(Date.now() - t)})`);
  } finally {
    // Take the webhooks down with the receivers: later traffic for these participants (always-routed
    // copies from other runs) then waits in their queues instead of failing, and backing off, against
    // closed ports, and the next run gets it at once.
    await pool(
      parties.map((p) => async () => {
        for (const ch of p.hooks.splice(0)) await p.client.deleteWebhook(ch, p.dipId).catch(() => undefined);
        if (p.statusHook) await p.client.call('DELETE', `/statusmessage/config/${p.dipId}`, '').catch(() => undefined);
      }),
      concurrency,
    ).catch(() => undefined);
    await Promise.allSettled(parties.flatMap((p) => [p.client.close(), p.receiver?.close() ?? Promise.resolve()]));
  }

  const mismatches = ledger.check();
  const lat = ledger.latencies().sort((a, b) => a - b);
  return {
    ok: mismatches.length === 0,
    seed,
    runId,
    mode: o.dataDir ? 'data-dir' : 'market',
    participants: model.participants,
    mpans: model.mpans.length,
    switched: model.mpans.filter((x) => x.changeOfSupplier).length,
    appointments,
    days: dayList.map(isoDay),
    changeOfSupplierFrom: isoDay(effectiveFrom),
    ...counts,
    expectedCopies: ledger.expectedCopies(),
    delivered: ledger.deliveries.length,
    foreign: ledger.foreign,
    byChannel,
    mismatches,
    latencyMs: { count: lat.length, p50: percentile(lat, 50), p90: percentile(lat, 90), p99: percentile(lat, 99), max: lat.at(-1) ?? 0 },
    durationMs: Date.now() - started,
  };

  /** Waits until the DIP's lookup shows these appointments (registration messages feed it asynchronously). */
  /** `fromMs`: an appointment from then must be known; `toMs`: the holder's period must end then (a de-appointment). */
  async function awaitLookup(wanted: Array<{ mpan: string; slot: ModelSlot; dipId: string } & ({ fromMs: number } | { toMs: number })>): Promise<void> {
    if (wanted.length === 0) return;
    if (!o.admin) {
      await sleep(o.settleMs ?? 2000);
      return;
    }
    const admin = o.admin;
    const deadline = Date.now() + 15_000;
    let pending = wanted;
    while (pending.length > 0 && Date.now() < deadline) {
      const still: typeof pending = [];
      for (const w of pending) {
        const history = (await adminCall(admin, 'GET', `/admin/mpan/${w.mpan}`)) as Array<{ slot: string; dipId: string; effectiveFrom: string; effectiveTo: string | null }>;
        const known = history.some((a) => a.slot === w.slot && a.dipId === w.dipId && ('fromMs' in w ? Date.parse(a.effectiveFrom) === w.fromMs : a.effectiveTo !== null && Date.parse(a.effectiveTo) === w.toMs));
        if (!known) still.push(w);
      }
      pending = still;
      if (pending.length > 0) await sleep(50);
    }
    for (const w of pending) {
      const change = 'fromMs' in w ? `${w.slot} = ${w.dipId} from ${new Date(w.fromMs).toISOString()}` : `the end of ${w.dipId} as ${w.slot} at ${new Date(w.toMs).toISOString()}`;
      ledger!.extraMismatches.push({ kind: 'lookup', participant: ledger!.label(w.dipId), mpan: w.mpan, detail: `the DIP's MPAN lookup did not learn ${change} within 15 s of the registration message` });
    }
  }
}

function describeRoles(parties: SimParticipant[]): string {
  const n = new Map<string, number>();
  for (const p of parties) n.set(p.role, (n.get(p.role) ?? 0) + 1);
  return [...n].map(([r, c]) => `${c} ${r}`).join(', ');
}

/** The participant may take a moment to be known to a running DIP (it polls its registry). */
async function untilKnown(p: Party, call: () => Promise<{ status: number; body: unknown }>): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const a = await call();
    if (a.status === 201) return;
    if ((a.status !== 401 && a.status !== 403) || Date.now() > deadline) {
      throw new Error(`${p.label} ${p.dipId}: the DIP answered ${a.status} to its status webhook registration: ${JSON.stringify(a.body)}`);
    }
    await sleep(100);
  }
}

const issuedCache = new Map<string, Promise<KeyAndCert>>();

/** The environment's CA (key and certificate) from OpenDIP's data directory. */
function readDipCa(dataDir: string): KeyAndCert {
  const pki = join(dataDir, 'pki');
  const caFiles = { keyPem: join(pki, 'ca.key.pem'), certPem: join(pki, 'ca.cert.pem') };
  if (!existsSync(caFiles.keyPem) || !existsSync(join(dataDir, 'dip.db'))) {
    throw new Error(`${dataDir} is not an OpenDIP data directory (no pki/ca.key.pem or dip.db): start the DIP with DIP_DATA_DIR=${dataDir} first`);
  }
  return { keyPem: readFileSync(caFiles.keyPem, 'utf8'), certPem: readFileSync(caFiles.certPem, 'utf8') };
}

async function onboardAll(dataDir: string, planned: SimParticipant[], env: string, url: string, caPem: string): Promise<Party[]> {
  const ca = readDipCa(dataDir);
  // RSA key generation is most of the set-up time: a rerun in the same process reuses what it issued.
  const issued = await Promise.all(
    planned.map((p) => {
      const key = `${ca.certPem}\u0000${env}\u0000${p.dipId}`;
      let cred = issuedCache.get(key);
      if (!cred) {
        cred = issueParticipantCertificate(ca, { organisation: `OpenDIP simulator ${p.label}`, dipIds: [p.dipId], environment: env, validDays: 7 });
        issuedCache.set(key, cred);
        cred.catch(() => issuedCache.delete(key));
      }
      return cred;
    }),
  );
  const { backend } = await openBackend(loadConfig({}, { dataDir }));
  try {
    const out: Party[] = [];
    for (const [i, p] of planned.entries()) {
      const cred = issued[i]!;
      const { apiKey } = await onboardParticipant(backend.registry, { dipId: p.dipId, roles: [p.role], organisation: `OpenDIP simulator ${p.label}`, certificatePem: cred.certPem });
      out.push({ ...p, hooks: [], client: new DipClient({ baseUrl: url, apiKey, keyPem: cred.keyPem, certPem: cred.certPem, caPem, connections: 4 }) });
    }
    return out;
  } finally {
    await backend.close();
  }
}

/** The participants a market file names, with their credentials read from their folders. */
export function readMarket(market: MarketFile, baseDir: string): Array<SimParticipant & { keyPem: string; certPem: string; apiKey: string }> {
  if (!Array.isArray(market.participants) || market.participants.length === 0) throw new Error('the market file lists no participants');
  const seen = new Map<string, number>();
  return market.participants.map((entry, i) => {
    if (!isSimRole(entry.role)) throw new Error(`market participant ${i}: role '${entry.role}' is not one of SUP, REGS, SDS, ADS, MSS, LDSO, MDS, LSS`);
    const dir = isAbsolute(entry.credentials) ? entry.credentials : resolve(baseDir, entry.credentials);
    const read = (name: string) => {
      const f = join(dir, name);
      if (!existsSync(f)) throw new Error(`market participant ${i}: ${f} is missing`);
      return readFileSync(f, 'utf8').trim();
    };
    const certPem = `${read('cert.pem')}\n`;
    const keyPem = `${read('key.pem')}\n`;
    const apiKey = read('api-key');
    const dipId = entry.dipId ?? certificateInfo(certPem).dipIds[0];
    if (!dipId) throw new Error(`market participant ${i}: ${join(dir, 'cert.pem')} names no DIP ID; give "dipId"`);
    const role: SimRole = entry.role;
    if (['REGS', 'SDS', 'ADS'].includes(role) && !/^[0-9a-f]{10}$/i.test(dipId)) {
      throw new Error(`market participant ${i}: ${role} ${dipId} sends messages, so its DIP ID must be 10 hex digits (the published senderUniqueReference pattern embeds it)`);
    }
    const n = (seen.get(role) ?? 0) + 1;
    seen.set(role, n);
    return { dipId, role, label: `${role}#${n}`, keyPem, certPem, apiKey };
  });
}

function openMarket(market: MarketFile, baseDir: string, url: string, caPem: string): Party[] {
  return readMarket(market, baseDir).map(({ keyPem, certPem, apiKey, ...p }) => ({ ...p, hooks: [], client: new DipClient({ baseUrl: url, apiKey, keyPem, certPem, caPem, connections: 4 }) }));
}

async function adminCall(admin: { url: string; token: string }, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const res = await request(`${admin.url.replace(/\/$/, '')}${path}`, {
    method,
    headers: { authorization: `Bearer ${admin.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`the operator API answered ${res.statusCode} to ${method} ${path}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as unknown;
}

// ---------------------------------------------------------------------------------------------
// Reporting

export function formatSummary(r: SimulationReport, maxListed = 50): string {
  const lines: string[] = [];
  lines.push('');
  lines.push(`simulation ${r.runId} (seed ${r.seed}, ${r.mode} mode): ${r.participants.length} participants, ${r.mpans} MPANs, settlement days ${r.days[0]} … ${r.days.at(-1)}, ${r.switched} changes of supplier from ${r.changeOfSupplierFrom}`);
  lines.push(`  appointment workflows: ${r.appointments.requested} requested, ${r.appointments.accepted} accepted, ${r.appointments.rejected} rejected`);
  const channels = Object.entries(r.byChannel).sort(([a], [b]) => a.localeCompare(b));
  for (const [c, n] of channels) lines.push(`  ${c.padEnd(8)} sent ${String(n.sent).padStart(6)}  accepted ${String(n.accepted).padStart(6)}  delivered ${String(n.delivered).padStart(6)}`);
  lines.push(`  sent        ${r.sent}`);
  lines.push(`  accepted    ${r.accepted}`);
  lines.push(`  rejected    ${r.rejected}`);
  lines.push(`  delivered   ${r.delivered} of ${r.expectedCopies} expected copies${r.foreign > 0 ? ` (+${r.foreign} from earlier runs, ignored)` : ''}`);
  lines.push(`  mismatches  ${r.mismatches.length}`);
  lines.push(`  latency     send start → receipt, ms: p50 ${r.latencyMs.p50}  p90 ${r.latencyMs.p90}  p99 ${r.latencyMs.p99}  max ${r.latencyMs.max}  (${r.latencyMs.count} copies)`);
  lines.push(`  duration    ${(r.durationMs / 1000).toFixed(1)} s`);
  if (r.mismatches.length > 0) {
    const byKind = new Map<string, number>();
    for (const x of r.mismatches) byKind.set(x.kind, (byKind.get(x.kind) ?? 0) + 1);
    lines.push(`mismatches by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    for (const x of r.mismatches.slice(0, maxListed)) {
      const where = [x.participant && `at ${x.participant}`, x.channel, x.mpan && `MPAN ${x.mpan}`, x.senderUniqueReference].filter(Boolean).join(' ');
      lines.push(`  ${x.kind.padEnd(14)} ${where}: ${x.detail}`);
    }
    if (r.mismatches.length > maxListed) lines.push(`  … and ${r.mismatches.length - maxListed} more (--json lists them all)`);
  }
  lines.push(r.ok ? 'result: OK — every participant received exactly what it should' : 'result: MISMATCH');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// The command line (`dip simulate`)

export interface SimulateCliOptions {
  url?: string;
  ca?: string;
  dataDir?: string;
  market?: string;
  adminUrl?: string;
  adminToken?: string;
  suppliers: number;
  mpans: number;
  days: number;
  dataServices: number;
  meteringServices: number;
  ldsos: number;
  startDate?: string;
  switchPercent: number;
  /** Share of the other MPANs whose supplier runs the appointment workflow (default 20). */
  appointPercent?: number;
  seed?: string;
  env?: string;
  listenHost: string;
  ports?: string;
  callbackHost?: string;
  /** Receivers serve HTTPS with this key and certificate. */
  tlsKey?: string;
  tlsCert?: string;
  /** Data-dir mode: HTTPS receivers with a certificate from the DIP's CA (default outside DEV). */
  https?: boolean;
  batch: number;
  concurrency: number;
  timeout: number;
  /** Stop waiting once nothing has arrived for this many seconds (default 10). */
  idle?: number;
  /** Without the operator API: milliseconds to wait for the lookup to learn registration messages (default 2000). */
  settle?: number;
  idPrefix: string;
  writeMpanLoad?: string;
  json?: boolean;
}

/**
 * The body of `dip simulate`: progress on stderr, the summary (or --json report) on stdout.
 * Returns the process exit code: 0 when everything matched, 1 otherwise.
 */
export async function runSimulateCommand(c: SimulateCliOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { loadConfig } = await import('../config.js');
  const { importedCatalogueFile } = await import('../pipeline/catalogue-source.js');
  if (!c.dataDir === !c.market) throw new Error('give --data-dir (OpenDIP on this machine) or --market FILE (pre-onboarded participants)');
  if (!c.tlsKey !== !c.tlsCert) throw new Error('--tls-key and --tls-cert go together');
  let ports: SimulateOptions['ports'];
  if (c.ports) {
    const m = /^(\d+)-(\d+)$/.exec(c.ports);
    if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) > 65535) throw new Error(`--ports '${c.ports}' is not FROM-TO, e.g. 9100-9199`);
    ports = { from: Number(m[1]), to: Number(m[2]) };
  }
  const base: Partial<SimulateOptions> = {};
  let url = c.url;
  let caFile = c.ca;
  let admin: SimulateOptions['admin'];
  if (c.dataDir) {
    const dataDir = resolve(c.dataDir);
    const config = loadConfig({ ...env, DIP_DATA_DIR: dataDir }, { dataDir });
    url ??= `https://localhost:${config.port}`;
    caFile ??= join(dataDir, 'pki', 'ca.cert.pem');
    const tokenFile = join(dataDir, 'admin-token');
    const token = c.adminToken ?? (existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : undefined);
    if (!token) throw new Error(`no operator token at ${tokenFile}: start the DIP with DIP_DATA_DIR=${dataDir} first`);
    admin = { url: c.adminUrl ?? `http://127.0.0.1:${config.adminPort}`, token };
    Object.assign(base, { dataDir, envTag: c.env ?? config.environment, channelOverrides: config.channels });
    if (existsSync(importedCatalogueFile(dataDir))) base.catalogue = Catalogue.fromFile(importedCatalogueFile(dataDir));
  } else {
    const file = resolve(c.market!);
    const market = JSON.parse(readFileSync(file, 'utf8')) as MarketFile;
    const marketDir = dirname(file);
    if (c.adminUrl || market.admin) {
      const a = market.admin;
      const token = c.adminToken ?? a?.token ?? (a?.tokenFile ? readFileSync(resolve(marketDir, a.tokenFile), 'utf8').trim() : undefined);
      if (!token) throw new Error('the operator API needs a token: --admin-token, or admin.token / admin.tokenFile in the market file');
      admin = { url: c.adminUrl ?? a!.url, token };
    }
    Object.assign(base, { market, marketDir, envTag: c.env ?? 'DEV' });
  }
  if (c.writeMpanLoad) {
    // Without the operator API, the operator loads this (dip mpan load FILE) before the run.
    if (!c.seed) throw new Error('--write-mpan-load needs --seed, and the run that follows the same --seed');
    const participants: SimParticipant[] = c.market
      ? readMarket(base.market!, base.marketDir!).map(({ dipId, role, label }) => ({ dipId, role, label }))
      : plannedParticipants({ suppliers: c.suppliers, dataServices: c.dataServices, meteringServices: c.meteringServices, ldsos: c.ldsos }, c.idPrefix);
    const model = buildMarket(participants, { mpans: c.mpans, switchPercent: c.switchPercent, seed: c.seed });
    writeFileSync(c.writeMpanLoad, initialLoadCsv(model));
    process.stderr.write(`wrote the initial MPAN lookup of ${model.mpans.length} MPANs (${initialLoadRows(model).length} appointments) to ${c.writeMpanLoad}; load it with: dip mpan load ${c.writeMpanLoad}\n`);
    return 0;
  }
  if (!url) throw new Error('--url is required with --market');
  if (!caFile) throw new Error("--ca (the DIP's CA certificate) is required with --market");
  const options: SimulateOptions = {
    ...base,
    url,
    caPem: readFileSync(caFile, 'utf8'),
    admin,
    suppliers: c.suppliers,
    mpans: c.mpans,
    days: c.days,
    dataServices: c.dataServices,
    meteringServices: c.meteringServices,
    ldsos: c.ldsos,
    startDate: c.startDate,
    switchPercent: c.switchPercent,
    appointPercent: c.appointPercent,
    seed: c.seed,
    listenHost: c.listenHost,
    ports,
    callbackHost: c.callbackHost,
    receiverTls: c.tlsKey && c.tlsCert ? { key: readFileSync(c.tlsKey, 'utf8'), cert: readFileSync(c.tlsCert, 'utf8') } : undefined,
    receiverHttps: c.https,
    batchSize: c.batch,
    concurrency: c.concurrency,
    deliveryTimeoutMs: c.timeout * 1000,
    idleTimeoutMs: (c.idle ?? 10) * 1000,
    settleMs: c.settle,
    idPrefix: c.idPrefix,
    log: (line) => process.stderr.write(`${line}\n`),
  };
  const report = await runSimulation(options);
  if (c.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`${formatSummary(report)}\n`);
  return report.ok ? 0 : 1;
}
