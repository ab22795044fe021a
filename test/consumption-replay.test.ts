import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { exampleMessage } from '../src/catalogue/examples.js';
import type { JsonSchema } from '../src/catalogue/types.js';
import {
  consumptionRequestRejected,
  nothingArchived,
  replayedConsumption,
  replayEntitlement,
  type ReplaySender,
} from '../src/domain/consumption-replay.js';
import { stampWrapper, type DipMessage } from '../src/domain/message.js';
import type { Appointment } from '../src/domain/mpan-lookup.js';
import { routeToDip } from '../src/domain/routing.js';
import { channelRouting } from '../src/pipeline/channels.js';
import { StoreError } from '../src/ports/errors.js';
import type { Archive } from '../src/ports/archive.js';
import type { QueueRef, Settlement } from '../src/ports/message-log.js';
import type { SqliteBackend } from '../src/adapters/sqlite/index.js';
import { CONSUMPTION_REPLAY_BATCH, CONSUMPTION_REPLAY_RECIPIENT, consumptionReplay } from '../src/pipeline/consumption-replay.js';
import { QueueWorker, type DeadLetterEvent } from '../src/pipeline/queue-worker.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { FakeClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { workerDeps } from './helpers/worker-deps.js';

const catalogue = Catalogue.load();
const ads = '2000000001';
const oldAds = '2000000002';
const mpan = mpanCore('replay-unit');

const sender: ReplaySender = {
  dipId: '0000000000',
  roleId: 'DIP',
  environment: 'DEV',
  timestamp: '2026-12-05T10:00:00+00:00',
  senderUniqueReference: 'S-IF-016-0000000000-DIP-20261205-abc123',
  correlationId: 'CI-20261205-0123456789ABCDEF',
};

/** A message as the archive holds it: the sender's, with the DIP's A0 and D0 stamped on. */
function archived(message: unknown, channel: string): DipMessage {
  return stampWrapper(message as DipMessage, {
    transactionId: `T-${channel}-${oldAds}-ADS-20261101-0000000000000001`,
    transactionTimestamp: '2026-11-02T01:00:00+00:00',
    publicationId: `PUB-${channel.slice(3)}`,
    initialCorrelationId: null,
    replayIndicator: false,
    primaryRecipients: [],
    secondaryRecipients: ['1000000001'],
    alwaysRecipients: ['4000000001'],
  });
}

/** An IF-016 as the requester gets it: the DIP's wrapper on the mapped message. */
function delivered(message: DipMessage): DipMessage {
  return stampWrapper(message, {
    transactionId: 'R-IF-016-0000000000-DIP-20261205-0000000000000002',
    transactionTimestamp: sender.timestamp,
    publicationId: 'PUB-016',
    initialCorrelationId: sender.correlationId,
    replayIndicator: true,
    primaryRecipients: [ads],
    secondaryRecipients: [],
    alwaysRecipients: [],
  });
}

function example(channel: string, eventCode: string): unknown {
  const item = exampleMessage(catalogue.schema(channel) as JsonSchema, eventCode) as { payload: { CommonBlock: { M0: { MPANCore: string } } } };
  item.payload.CommonBlock.M0.MPANCore = mpan;
  return item;
}

describe('IF-016 replay of archived consumption (domain)', () => {
  it('maps IF-021 [ActivePower] and [ReactivePower]: S2 is the original S1, M0 and the CustomBlock are the original\'s, and the result is a valid IF-016', () => {
    for (const eventCode of ['ActivePower', 'ReactivePower'] as const) {
      const original = buildIF021({ senderDipId: oldAds, senderRole: 'ADS', mpan, eventCode, settlementDate: '2026-11-01', uniqueSuffix: eventCode });
      const replay = replayedConsumption('IF-021', archived(original, 'IF-021'), sender);
      expect(replay?.eventCode).toBe(eventCode);
      const cb = replay!.message.payload.CommonBlock as Record<string, unknown>;
      expect(cb.S0).toEqual({ interfaceID: 'IF-016', schemaVersion: '011', eventCode: `[${eventCode}]` });
      expect(cb.S1).toMatchObject({ senderDIPID: '0000000000', senderRoleID: 'DIP', senderCorrelationID: sender.correlationId, senderUniqueReference: sender.senderUniqueReference });
      expect(cb.S2).toEqual(original.payload.CommonBlock.S1);
      expect(cb.M0).toEqual(original.payload.CommonBlock.M0);
      expect(cb.R1).toEqual({ responseCode: 'A', responseMessages: [] });
      expect(replay!.message.payload.CustomBlock).toEqual(original.payload.CustomBlock);
      const checked = catalogue.validate('IF-016', delivered(replay!.message));
      expect(checked.ok ? 'valid' : checked.errors).toBe('valid');
    }
    // The validator is the judge: without S2, the published IF-016 [ActivePower] is refused.
    const replay = replayedConsumption('IF-021', archived(buildIF021({ senderDipId: oldAds, senderRole: 'ADS', mpan }), 'IF-021'), sender)!;
    const { S2: _s2, ...withoutS2 } = replay.message.payload.CommonBlock;
    expect(catalogue.validate('IF-016', delivered({ payload: { ...replay.message.payload, CommonBlock: withoutS2 } })).ok).toBe(false);
  });

  it('maps IF-014 [ActivePowerRejected] (keeping its R0) and IF-013 [ActivePowerDefaulted] to valid IF-016s of the same event code', () => {
    const rejected = replayedConsumption('IF-014', archived(example('IF-014', 'ActivePowerRejected'), 'IF-014'), sender);
    expect(rejected?.eventCode).toBe('ActivePowerRejected');
    expect(rejected!.message.payload.CommonBlock.R0).toBeDefined();
    const defaulted = replayedConsumption('IF-013', archived(example('IF-013', 'ActivePowerDefaulted'), 'IF-013'), sender);
    expect(defaulted?.eventCode).toBe('ActivePowerDefaulted');
    for (const r of [rejected!, defaulted!]) {
      const checked = catalogue.validate('IF-016', delivered(r.message));
      expect(checked.ok ? 'valid' : checked.errors).toBe('valid');
    }
  });

  it('replays nothing else: IF-014 [ConsumptionOnDeEnergisedMPAN], another channel, or a copy without its CustomBlock in clear', () => {
    expect(replayedConsumption('IF-014', archived(example('IF-014', 'ConsumptionOnDeEnergisedMPAN'), 'IF-014'), sender)).toBeNull();
    const if021 = archived(buildIF021({ senderDipId: oldAds, senderRole: 'ADS', mpan }), 'IF-021');
    expect(replayedConsumption('IF-013', if021, sender)).toBeNull();
    const { CustomBlock: _dropped, ...withoutCustom } = if021.payload;
    expect(replayedConsumption('IF-021', { payload: withoutCustom }, sender)).toBeNull();
    expect(replayedConsumption('IF-021', 'not a message', sender)).toBeNull();
  });

  it('answers a request that cannot be met with a valid [ConsumptionRequestRejected] naming the MPAN and the reason (R1, cut to 200 characters)', () => {
    const request = { payload: { CommonBlock: { S0: { interfaceID: 'IF-015', schemaVersion: '011', eventCode: '[ConsumptionReplay]' }, S1: {}, M0: { MPANCore: mpan, distributorDIPID: '3000000001', GSPGroupID: '_A' } } } };
    const answer = consumptionRequestRejected(request, sender, `${nothingArchived(mpan, 0)} ${'x'.repeat(300)}`);
    const cb = answer.payload.CommonBlock as Record<string, { responseCode?: string; responseMessages?: string[] }>;
    expect(cb.M0).toEqual(request.payload.CommonBlock.M0);
    expect(cb.R1!.responseCode).toBe('R');
    expect(cb.R1!.responseMessages![0]).toMatch(new RegExp(`^no consumption \\(IF-021, IF-013, IF-014\\) for MPAN ${mpan} that you sent or were sent is archived`));
    expect(cb.R1!.responseMessages![0]).toHaveLength(200);
    const checked = catalogue.validate('IF-016', delivered(answer));
    expect(checked.ok ? 'valid' : checked.errors).toBe('valid');
  });

  it('entitles only the data service the MPAN lookup names now', () => {
    const now = Date.parse('2026-12-05T10:00:00Z');
    const history: Appointment[] = [
      { mpan, slot: 'DS', dipId: oldAds, fromMs: Date.parse('2020-01-01T00:00:00Z'), toMs: Date.parse('2026-11-30T23:59:59Z') },
      { mpan, slot: 'DS', dipId: ads, fromMs: Date.parse('2026-12-01T00:00:00Z'), toMs: null },
    ];
    expect(replayEntitlement(ads, mpan, history, now)).toEqual({ ok: true, mpan });
    // The requester learns only that it is not the appointed data service: not who is (any ADS could ask
    // about any MPAN and read its appointment), nor whether anyone is. The operator's log keeps the detail.
    const notYou = `${oldAds} is not the data service appointed to MPAN ${mpan} now; only that data service may have its consumption replayed`;
    expect(replayEntitlement(oldAds, mpan, history, now)).toEqual({ ok: false, reason: notYou, detail: `the MPAN lookup names ${ads}` });
    expect(replayEntitlement(oldAds, mpan, [], now)).toEqual({ ok: false, reason: notYou, detail: 'the MPAN lookup names no data service' });
    expect(replayEntitlement(ads, null, history, now)).toMatchObject({ ok: false, reason: expect.stringContaining('names no MPAN') });
  });

  it('routes a message the DIP consumes to its internal recipient, refusing one addressed to another participant', () => {
    const channel = { interfaceId: 'IF-015', publicationId: 'PUB-015', senderRoles: ['ADS'], receiverRoles: ['DIP'], alwaysRoles: [], alwaysParticipants: [], primaryRouting: true };
    const header = { interfaceId: 'IF-015', eventCode: '[ConsumptionReplay]', schemaVersion: '011', environmentTag: 'DEV', senderUniqueReference: 'r', senderTimestamp: '', senderDipId: ads, senderRoleId: 'ADS', senderCorrelationId: null, connectionProviderId: null, primaryRecipients: [] as string[], mpan };
    expect(routeToDip(channel, header, '0000000000', 'DIP-REPLAY')).toMatchObject({ ok: true, recipients: ['DIP-REPLAY'], primary: [] });
    expect(routeToDip(channel, { ...header, primaryRecipients: ['0000000000'] }, '0000000000', 'DIP-REPLAY')).toMatchObject({ ok: true });
    expect(routeToDip(channel, { ...header, primaryRecipients: ['1000000001'] }, '0000000000', 'DIP-REPLAY')).toMatchObject({ ok: false, code: expect.stringMatching(/^MSG/) });
  });
});

describe('DIP Replay Service (pipeline, on a real store)', () => {
  it('answers a request handled twice (a stop before its queue settled) once: the repeats are refused as duplicates', async () => {
    const backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-replay-')), 'dip.db'), { clock: systemClock });
    try {
      const originals = (['ActivePower', 'ReactivePower'] as const).map((eventCode, i) => {
        const message = archived(buildIF021({ senderDipId: oldAds, senderRole: 'ADS', mpan, eventCode, uniqueSuffix: `twice${i}` }), 'IF-021');
        return { transactionId: `T-IF-021-${oldAds}-ADS-20261101-000000000000000${i}`, channel: 'IF-021', eventCode: `[${eventCode}]`, senderDipId: oldAds, senderRole: 'ADS', senderUniqueReference: `twice-${i}`, correlationId: null, mpan, receivedAt: Date.now(), outbound: JSON.stringify(message), recipients: ['1000000001', ads] };
      });
      await backend.log.append({ channel: 'IF-021', senderDipId: oldAds, receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}', messages: originals });
      const request = { payload: { CommonBlock: { S0: { interfaceID: 'IF-015', schemaVersion: '011', eventCode: '[ConsumptionReplay]' }, S1: { senderDIPID: ads, senderRoleID: 'ADS' }, D0: { initialCorrelationID: 'CI-20261205-0000000000AB' }, M0: { MPANCore: mpan } } } };
      const queue = { recipientDipId: CONSUMPTION_REPLAY_RECIPIENT, channel: 'IF-015' };
      await backend.log.append({
        channel: 'IF-015', senderDipId: ads, receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}',
        messages: [{ transactionId: `T-IF-015-${ads}-ADS-20261205-0000000000000001`, channel: 'IF-015', eventCode: '[ConsumptionReplay]', senderDipId: ads, senderRole: 'ADS', senderUniqueReference: 'ask-1', correlationId: 'CI-20261205-0000000000AB', mpan, receivedAt: Date.now(), outbound: JSON.stringify(request), recipients: [CONSUMPTION_REPLAY_RECIPIENT] }],
      });
      const woken: string[] = [];
      const consume = consumptionReplay({
        log: backend.log,
        notify: (queues) => woken.push(...queues.map((q) => q.recipientDipId)),
        archive: backend.archive,
        mpan: { history: async () => [{ mpan, slot: 'DS', dipId: ads, fromMs: 0, toMs: null }] },
        channel: (id) => channelRouting(catalogue.channel(id)!, undefined, 60_000),
        clock: systemClock,
        logger: { info() {}, warn() {}, error() {} },
        dipId: '0000000000',
        environment: 'DEV',
      })(queue)!;
      const entries = await backend.log.readQueue(queue, 0, 10, 1 << 20);
      expect(entries).toHaveLength(1);
      await consume(entries);
      await consume(entries);
      const answered = { recipientDipId: ads, channel: 'IF-016' };
      expect((await backend.log.queueState(answered)).headSeq).toBe(2);
      expect(woken).toEqual([ads]);
      const replays = (await backend.log.readQueue(answered, 0, 10, 1 << 20)).map((e) => JSON.parse(e.outbound) as DipMessage);
      expect(replays.map((m) => (m.payload.CommonBlock.S2 as { senderUniqueReference: string }).senderUniqueReference)).toEqual(originals.map((o) => (JSON.parse(o.outbound) as DipMessage).payload.CommonBlock.S1.senderUniqueReference));
      expect(replays.every((m) => m.payload.CommonBlock.D0?.initialCorrelationID === 'CI-20261205-0000000000AB')).toBe(true);
    } finally {
      await backend.close();
    }
  });
});

/** A store with one IF-015 from `ads` queued for the replay service, and the service consuming it. */
async function replayStore(originals: Array<{ channel: string; message: DipMessage; senderDipId: string; senderRole: string; recipients: string[] }>, over: { archive?: Pick<Archive, 'findForMpan'>; backend?: (b: SqliteBackend) => void; requests?: number } = {}) {
  const backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-replay-')), 'dip.db'), { clock: systemClock });
  over.backend?.(backend);
  let n = 0;
  for (const o of originals) {
    n++;
    const eventCode = (o.message.payload.CommonBlock.S0 as { eventCode: string }).eventCode;
    await backend.log.append({
      channel: o.channel, senderDipId: o.senderDipId, receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}',
      messages: [{ transactionId: `T-${o.channel}-${o.senderDipId}-${o.senderRole}-20261101-${String(n).padStart(16, '0')}`, channel: o.channel, eventCode, senderDipId: o.senderDipId, senderRole: o.senderRole, senderUniqueReference: `orig-${n}`, correlationId: null, mpan, receivedAt: Date.now(), outbound: JSON.stringify(o.message), recipients: o.recipients }],
    });
  }
  const request = { payload: { CommonBlock: { S0: { interfaceID: 'IF-015', schemaVersion: '011', eventCode: '[ConsumptionReplay]' }, S1: { senderDIPID: ads, senderRoleID: 'ADS' }, D0: { initialCorrelationID: 'CI-20261205-0000000000AB' }, M0: { MPANCore: mpan } } } };
  const queue = { recipientDipId: CONSUMPTION_REPLAY_RECIPIENT, channel: 'IF-015' };
  for (let i = 1; i <= (over.requests ?? 1); i++) {
    await backend.log.append({
      channel: 'IF-015', senderDipId: ads, receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}',
      messages: [{ transactionId: `T-IF-015-${ads}-ADS-20261205-${String(i).padStart(16, '0')}`, channel: 'IF-015', eventCode: '[ConsumptionReplay]', senderDipId: ads, senderRole: 'ADS', senderUniqueReference: `ask-${i}`, correlationId: 'CI-20261205-0000000000AB', mpan, receivedAt: Date.now(), outbound: JSON.stringify(request), recipients: [CONSUMPTION_REPLAY_RECIPIENT] }],
    });
  }
  const errors: unknown[] = [];
  const consume = consumptionReplay({
    log: backend.log,
    notify: () => {},
    archive: over.archive ?? backend.archive,
    mpan: { history: async () => [{ mpan, slot: 'DS', dipId: ads, fromMs: 0, toMs: null }] },
    channel: (id) => channelRouting(catalogue.channel(id)!, undefined, 60_000),
    clock: systemClock,
    logger: { info() {}, warn() {}, error: (o: unknown) => errors.push(o) },
    dipId: '0000000000',
    environment: 'DEV',
  })(queue)!;
  const entries = await backend.log.readQueue(queue, 0, 500, 1 << 24);
  const answers = async () => (await backend.log.readQueue({ recipientDipId: ads, channel: 'IF-016' }, 0, 100, 1 << 24)).map((e) => JSON.parse(e.outbound) as DipMessage);
  return { backend, consume, entries, answers, errors };
}

const s2Ref = (m: DipMessage) => (m.payload.CommonBlock.S2 as { senderUniqueReference: string } | undefined)?.senderUniqueReference;
const s1Ref = (m: DipMessage) => m.payload.CommonBlock.S1.senderUniqueReference;
const r1 = (m: DipMessage) => m.payload.CommonBlock.R1 as { responseCode: string; responseMessages: string[] };

describe('DIP Replay Service: only what the requester may view (spec 5.5.11)', () => {
  it('replays what the requester sent or was sent, not another data service\'s IF-021 nor one sent before it was a recipient', async () => {
    const own = archived(buildIF021({ senderDipId: ads, senderRole: 'ADS', mpan, uniqueSuffix: 'own' }), 'IF-021');
    const predecessors = archived(buildIF021({ senderDipId: oldAds, senderRole: 'ADS', mpan, uniqueSuffix: 'pred' }), 'IF-021');
    const toRequester = archived(example('IF-013', 'ActivePowerDefaulted'), 'IF-013');
    const beforeRecipient = archived(example('IF-014', 'ActivePowerRejected'), 'IF-014');
    const { backend, consume, entries, answers } = await replayStore([
      { channel: 'IF-021', message: predecessors, senderDipId: oldAds, senderRole: 'ADS', recipients: ['1000000001'] },
      { channel: 'IF-014', message: beforeRecipient, senderDipId: '5000000001', senderRole: 'MDS', recipients: [oldAds, '1000000001'] },
      { channel: 'IF-021', message: own, senderDipId: ads, senderRole: 'ADS', recipients: ['1000000001'] },
      { channel: 'IF-013', message: toRequester, senderDipId: '5000000001', senderRole: 'MDS', recipients: [ads, '1000000001'] },
    ]);
    try {
      await consume(entries);
      const got = await answers();
      expect(got.map((m) => m.payload.CommonBlock.S0.eventCode)).toEqual(['[ActivePower]', '[ActivePowerDefaulted]']);
      expect(got.map(s2Ref)).toEqual([s1Ref(own), s1Ref(toRequester)]);
      // Queued for it as the MPAN's data service, the capacity that entitles it (obfuscation, spec 5.5.6).
      expect((await backend.log.readQueue({ recipientDipId: ads, channel: 'IF-016' }, 0, 100, 1 << 24)).map((e) => e.capacity)).toEqual(['ADS', 'ADS']);
    } finally {
      await backend.close();
    }
  });
});

describe('DIP Replay Service: a failure reading the archive does not hold the queue', () => {
  it('replays the rest when one archived row cannot be opened, counting it unreadable', async () => {
    const good = archived(buildIF021({ senderDipId: ads, senderRole: 'ADS', mpan, uniqueSuffix: 'good' }), 'IF-021');
    const poisoned = archived(buildIF021({ senderDipId: ads, senderRole: 'ADS', mpan, uniqueSuffix: 'POISON' }), 'IF-021');
    // A sealer whose authentication fails on one row, as AES-GCM's does on a damaged one (a plain Error).
    const sealer = {
      seal: (plain: Buffer | string) => Buffer.from(plain),
      open: (sealed: Buffer) => {
        if (sealed.includes('POISON')) throw new Error('Unsupported state or unable to authenticate data');
        return sealed;
      },
      index: (v: string) => v,
    };
    const { backend, consume, entries, answers, errors } = await replayStore(
      [
        { channel: 'IF-021', message: poisoned, senderDipId: ads, senderRole: 'ADS', recipients: ['1000000001'] },
        { channel: 'IF-021', message: good, senderDipId: ads, senderRole: 'ADS', recipients: ['1000000001'] },
      ],
      { backend: (b) => b.useSealer(sealer) },
    );
    try {
      await expect(consume(entries)).resolves.toBe(entries.at(-1)!.seq);
      expect((await answers()).map(s2Ref)).toEqual([s1Ref(good)]);
      expect(errors).toHaveLength(1);
    } finally {
      await backend.close();
    }
  });

  it('answers [ConsumptionRequestRejected] when reading the archive fails, and throws a store failure on for the worker to retry', async () => {
    const own = archived(buildIF021({ senderDipId: ads, senderRole: 'ADS', mpan, uniqueSuffix: 'own2' }), 'IF-021');
    let failure: Error = new Error('Unsupported state or unable to authenticate data');
    const archive = { findForMpan: async () => Promise.reject(failure) };
    const { backend, consume, entries, answers } = await replayStore([{ channel: 'IF-021', message: own, senderDipId: ads, senderRole: 'ADS', recipients: ['1000000001'] }], { archive });
    try {
      failure = new StoreError('unavailable', 'database is locked', 'SQLITE_BUSY');
      await expect(consume(entries)).rejects.toBeInstanceOf(StoreError);
      expect(await answers()).toEqual([]);
      failure = new Error('Unsupported state or unable to authenticate data');
      await expect(consume(entries)).resolves.toBe(entries.at(-1)!.seq);
      const [rejected, ...more] = await answers();
      expect(more).toEqual([]);
      expect(rejected!.payload.CommonBlock.S0.eventCode).toBe('[ConsumptionRequestRejected]');
      expect(r1(rejected!).responseCode).toBe('R');
      expect(r1(rejected!).responseMessages[0]).toMatch(/^the DIP could not read its archive/);
    } finally {
      await backend.close();
    }
  });

  it('refuses a request that cannot itself be read, answering the ones before it: the queue sets it aside as a dead letter, saying why', async () => {
    const own = archived(buildIF021({ senderDipId: ads, senderRole: 'ADS', mpan, uniqueSuffix: 'own3' }), 'IF-021');
    const { backend, consume, entries, answers } = await replayStore([{ channel: 'IF-021', message: own, senderDipId: ads, senderRole: 'ADS', recipients: ['1000000001'] }], { requests: 3 });
    try {
      const damaged = entries.map((e, i) => (i === 1 ? { ...e, outbound: '{"payload": ' } : e));
      await expect(consume(damaged)).resolves.toEqual({ refused: damaged[1], detail: expect.stringMatching(/^the IF-015 could not be read from its queue \(.+\): not answered$/) });
      expect(await answers()).toHaveLength(1);
    } finally {
      await backend.close();
    }
  });

  it('dead-letters the unreadable request through its queue worker, and answers the next', async () => {
    const own = archived(buildIF021({ senderDipId: ads, senderRole: 'ADS', mpan, uniqueSuffix: 'own4' }), 'IF-021');
    const { backend, consume, entries, answers } = await replayStore([{ channel: 'IF-021', message: own, senderDipId: ads, senderRole: 'ADS', recipients: ['1000000001'] }], { requests: 2 });
    try {
      const queue = { recipientDipId: CONSUMPTION_REPLAY_RECIPIENT, channel: 'IF-015' };
      const told: DeadLetterEvent[] = [];
      // The first request's queued copy is damaged; the store hands it out as it is.
      const log = {
        readQueue: async (...args: Parameters<typeof backend.log.readQueue>) => (await backend.log.readQueue(...args)).map((e) => (e.seq === entries[0]!.seq ? { ...e, outbound: '{"payload": ' } : e)),
        queueState: (q: QueueRef) => backend.log.queueState(q),
        settle: (q: QueueRef, settlement: Settlement) => backend.log.settle(q, settlement),
      };
      const clock = new FakeClock();
      const transport = { post: async () => Promise.reject(new Error('no webhook')), close: async () => {} };
      const worker = new QueueWorker(queue, workerDeps(clock, { log, transport, localConsumer: () => consume, deadLettered: (events) => told.push(...events) }));
      worker.kick();
      await waitFor(() => worker.state === 'idle', 10_000, 'the replay queue drained');
      expect(worker.status().ackedSeq).toBe(entries.at(-1)!.seq);
      expect(told.map((e) => [e.entry.seq, e.reason])).toEqual([[entries[0]!.seq, 'rejected']]);
      const [dead, ...more] = await backend.deadLetters.deadLetters({ ...queue, limit: 10 });
      expect(more).toEqual([]);
      expect(dead).toMatchObject({ seq: entries[0]!.seq, transactionId: entries[0]!.transactionId, reason: 'rejected', state: 'dead', detail: expect.stringMatching(/^the IF-015 could not be read from its queue/) });
      expect(await answers()).toHaveLength(1);
    } finally {
      await backend.close();
    }
  });

  it(`handles at most ${CONSUMPTION_REPLAY_BATCH} requests per batch, returning the last it handled for the queue to settle`, async () => {
    const own = archived(buildIF021({ senderDipId: ads, senderRole: 'ADS', mpan, uniqueSuffix: 'own3' }), 'IF-021');
    const { backend, consume, entries, answers } = await replayStore([{ channel: 'IF-021', message: own, senderDipId: ads, senderRole: 'ADS', recipients: ['1000000001'] }], { requests: CONSUMPTION_REPLAY_BATCH + 5 });
    try {
      expect(entries).toHaveLength(CONSUMPTION_REPLAY_BATCH + 5);
      await expect(consume(entries)).resolves.toBe(entries[CONSUMPTION_REPLAY_BATCH - 1]!.seq);
      expect(await answers()).toHaveLength(CONSUMPTION_REPLAY_BATCH);
    } finally {
      await backend.close();
    }
  });
});
