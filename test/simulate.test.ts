import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { issueServerCertificate } from '../src/security/pki.js';
import { buildMarket, INITIAL_FROM_MS, plannedParticipants } from '../src/sim/market.js';
import { channelRules, predictRecipients } from '../src/sim/oracle.js';
import { formatSummary, runSimulation, type MarketFile, type SimulateOptions } from '../src/sim/simulate.js';
import type { TestDip } from './helpers/dip-harness.js';
import { startSharedPkiDip, type SharedPkiDip } from './helpers/shared-pki.js';

const day = (d: string) => Date.parse(`${d}T00:00:00Z`);

describe('the simulator’s own routing model', () => {
  const participants = plannedParticipants({ suppliers: 2, dataServices: 2, meteringServices: 1, ldsos: 1 }, 'A5');
  const model = buildMarket(participants, { mpans: 5, switchPercent: 100, seed: 'unit' });
  const rules = channelRules(Catalogue.load());
  const m = model.mpans[0]!;
  const oldSup = model.holder(m.core, 'SUP', day('2026-01-01'))!;
  const newSup = m.changeOfSupplier!.incomingSupplier;
  const ds = model.holder(m.core, 'DS', day('2026-01-01'))!;
  const ldso = model.holder(m.core, 'LDSO', day('2026-01-01'))!;
  const [mds, lss, regs, mss] = (['MDS', 'LSS', 'REGS', 'MSS'] as const).map((r) => model.ofRole(r)[0]!.dipId);

  it('predicts IF-021 by settlement day, and registration messages at the time of receipt', () => {
    expect(oldSup).not.toBe(newSup);
    model.appoint(m.core, 'SUP', newSup, day('2026-11-10'));
    const at = (d: string) => predictRecipients(model, rules('IF-021'), { sender: ds, primary: [], mpan: m.core, addressingMs: day(d) });
    expect(at('2026-11-09')).toEqual({ primary: [], secondary: [oldSup, ldso], always: [mds, lss], recipients: [oldSup, ldso, mds, lss] });
    expect(at('2026-11-10').secondary).toEqual([newSup, ldso]);
    // IF-036 to the data service: the supplier and distributor of today, the metering service, MDS.
    const app = predictRecipients(model, rules('IF-036'), { sender: regs!, primary: [ds], mpan: m.core, addressingMs: day('2026-11-20') });
    expect(app.recipients.sort()).toEqual([ds, newSup, ldso, mss, mds].sort());
    expect(model.holder(m.core, 'SUP', INITIAL_FROM_MS)).toBe(oldSup);
  });

  it('predicts the appointment workflow and de-appointment, and "always" routing to named participants', () => {
    const x = model.mpans[1]!;
    const oldDs = model.holder(x.core, 'DS', day('2026-11-20'))!;
    const newDs = [...model.ofRole('SDS'), ...model.ofRole('ADS')].map((p) => p.dipId).find((id) => id !== oldDs)!;
    const sup = model.holder(x.core, 'SUP', day('2026-11-20'))!;
    const xLdso = model.holder(x.core, 'LDSO', day('2026-11-20'))!;
    expect(predictRecipients(model, rules('IF-031'), { sender: sup, primary: [regs!], mpan: x.core, addressingMs: day('2026-11-20') }).recipients).toEqual([regs]);
    // The request to the proposed data service also reaches the MPAN's current data and metering services (secondary).
    expect(predictRecipients(model, rules('IF-033'), { sender: regs!, primary: [newDs], mpan: x.core, addressingMs: day('2026-11-20') }).recipients.sort()).toEqual([newDs, oldDs, mss].sort());
    model.appoint(x.core, 'DS', newDs, day('2026-11-20'));
    const deApp = predictRecipients(model, rules('IF-037'), { sender: regs!, primary: [oldDs], mpan: x.core, addressingMs: day('2026-11-21') });
    expect(deApp).toEqual({ primary: [oldDs], secondary: [sup, xLdso, newDs, mss], always: [mds], recipients: [oldDs, sup, xLdso, newDs, mss, mds] });
    expect(rules('IF-031').workflowStarter).toBe(true);
    expect(rules('IF-032').workflowStarter).toBe(false);
    const named = channelRules(Catalogue.load(), { 'IF-021': { alwaysParticipants: [regs!] } })('IF-021');
    expect(predictRecipients(model, named, { sender: ds, primary: [], mpan: m.core, addressingMs: day('2026-11-20') }).always).toEqual([regs, mds, lss]);
  });
});

describe('dip simulate against a real OpenDIP', () => {
  let t: TestDip;
  let common: () => Pick<SimulateOptions, 'url' | 'caPem' | 'dataDir' | 'admin' | 'graceMs' | 'deliveryTimeoutMs' | 'idleTimeoutMs'>;

  beforeAll(async () => {
    t = await startSharedPkiDip();
    const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    common = () => ({
      url: t.dip.url,
      caPem: t.dip.pki.ca.certPem,
      dataDir: t.config.dataDir,
      admin: { url: `http://127.0.0.1:${t.dip.adminPort}`, token },
      graceMs: 300,
      deliveryTimeoutMs: 15_000,
      idleTimeoutMs: 1500,
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('3 suppliers, 20 MPANs, 2 days: every participant receives exactly what it should', async () => {
    const lines: string[] = [];
    const r = await runSimulation({ ...common(), suppliers: 3, mpans: 20, days: 2, seed: 'sim-test', log: (l) => lines.push(l) });
    expect(r.mismatches, formatSummary(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.rejected).toBe(0);
    expect(r.accepted).toBe(r.sent);
    expect(r.switched).toBe(4); // 20 %
    // Every MPAN's consumption for both days (the held-back day arrives late), and the change of supplier.
    expect(r.byChannel['IF-021']).toMatchObject({ sent: 40, accepted: 40 });
    expect(r.byChannel['IF-001']).toMatchObject({ sent: 4, accepted: 4 });
    expect(r.byChannel['IF-002']).toMatchObject({ sent: 4, accepted: 4 });
    // The appointment workflow for every fifth MPAN that keeps its supplier (3 of 16): two accepted, one refused.
    expect(r.appointments).toEqual({ requested: 3, accepted: 2, rejected: 1 });
    for (const c of ['IF-031', 'IF-032', 'IF-033', 'IF-034', 'IF-035']) expect(r.byChannel[c], c).toMatchObject({ sent: 3, accepted: 3 });
    expect(r.byChannel['IF-036']).toMatchObject({ sent: 4 + 2, accepted: 4 + 2 });
    expect(r.byChannel['IF-037']).toMatchObject({ sent: 2, accepted: 2 });
    // IF-031 and IF-034 reach the registration service alone; IF-032 the supplier alone.
    expect(r.byChannel['IF-031']!.delivered).toBe(3);
    expect(r.byChannel['IF-032']!.delivered).toBe(3);
    expect(r.byChannel['IF-034']!.delivered).toBe(3);
    expect(r.delivered).toBe(r.expectedCopies);
    // IF-021: supplier, distributor, MDS, LSS. IF-001: incoming and outgoing supplier, distributor, MDS.
    expect(r.byChannel['IF-021']!.delivered).toBe(160);
    expect(r.byChannel['IF-001']!.delivered).toBe(16);
    expect(r.latencyMs.count).toBe(r.expectedCopies);
    expect(r.latencyMs.max).toBeGreaterThanOrEqual(r.latencyMs.p50);
    expect(lines.some((l) => l.startsWith('[1 MPAN lookup]'))).toBe(true);
    expect(lines.some((l) => l.startsWith('[3 change of supplier]'))).toBe(true);
    expect(lines.find((l) => l.startsWith('[4 appointment workflow]'))).toMatch(/3 suppliers asked .*each answered with a workflow correlation ID.*2 accepted.*1 rejected/);
    expect(formatSummary(r)).toMatch(/result: OK/);
  });

  it('checks every workflow copy carries the correlation ID: a DIP that stamps one where none is due is caught', async () => {
    // The simulator is told IF-031 opens no workflow; the DIP does give each a correlation ID.
    const r = await runSimulation({ ...common(), suppliers: 2, mpans: 3, days: 2, switchPercent: 0, appointPercent: 100, seed: 'sim-correlation', channelOverrides: { 'IF-031': { workflowStarter: false } } });
    expect(r.appointments.requested).toBe(3);
    expect(r.mismatches.length).toBeGreaterThan(0);
    expect(r.mismatches.every((m) => m.kind === 'bad-correlation' && m.channel === 'IF-031')).toBe(true);
    expect(r.mismatches).toHaveLength(3); // one copy each, at the registration service
    expect(r.mismatches[0]!.detail).toMatch(/D0\.initialCorrelationID is "CI-.*", expected null \(no workflow\)/);
  });

  it('reports a mismatch when its model and the DIP disagree about who supplies an MPAN', async () => {
    let tampered = { mpan: '', real: '', wrong: '' };
    const r = await runSimulation({
      ...common(),
      suppliers: 2,
      mpans: 4,
      days: 2,
      seed: 'sim-tamper',
      receiverHttps: true, // receivers on https, with a certificate the simulator issues from the DIP's CA
      // After the DIP's lookup was loaded, the model alone moves one MPAN to the other supplier.
      tamper: (model) => {
        const x = model.mpans.find((m) => m.changeOfSupplier === null)!;
        const sup = x.history.find((a) => a.slot === 'SUP')!;
        tampered = { mpan: x.core, real: sup.dipId, wrong: model.ofRole('SUP').find((p) => p.dipId !== sup.dipId)!.dipId };
        sup.dipId = tampered.wrong;
      },
    });
    expect(r.ok).toBe(false);
    const about = r.mismatches.filter((m) => m.mpan === tampered.mpan);
    // Both days' IF-021 for that MPAN: never at the supplier the model wrongly expects, and at the real one unasked.
    expect(about.filter((m) => m.kind === 'missing' && m.participant?.includes(tampered.wrong))).toHaveLength(2);
    expect(about.filter((m) => m.kind === 'unexpected' && m.participant?.includes(tampered.real))).toHaveLength(2);
    expect(about.filter((m) => m.kind === 'bad-a0')).not.toHaveLength(0);
    expect(r.mismatches.every((m) => m.mpan === tampered.mpan)).toBe(true);
    expect(formatSummary(r)).toMatch(/mismatches by kind: .*missing 2[\s\S]*result: MISMATCH/);
  });
});

describe('dip simulate with a market file of pre-onboarded participants', () => {
  let t: SharedPkiDip;
  beforeAll(async () => {
    t = await startSharedPkiDip();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('uses their credentials folders and the operator API named in the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-market-'));
    const roles = [['SUP', 'C710000001'], ['SUP', 'C710000002'], ['REGS', 'C770000001'], ['SDS', 'C720000001'], ['LDSO', 'C740000001'], ['MDS', 'C750000001']] as const;
    const market: MarketFile = { participants: [], admin: { url: `http://127.0.0.1:${t.dip.adminPort}`, tokenFile: join(t.config.dataDir, 'admin-token') } };
    for (const [role, id] of roles) {
      const p = await t.join(id, [role]);
      const folder = join(dir, id);
      mkdirSync(folder);
      writeFileSync(join(folder, 'key.pem'), p.credentials.keyPem);
      writeFileSync(join(folder, 'cert.pem'), p.credentials.certPem);
      writeFileSync(join(folder, 'api-key'), `${p.apiKey}\n`);
      market.participants.push({ role, credentials: `./${id}` });
    }
    writeFileSync(join(dir, 'market.json'), JSON.stringify(market));
    // The receivers serve https with a certificate the DIP trusts (here: from the environment's CA).
    const tls = await issueServerCertificate(t.dip.pki.ca, { hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 1 });
    writeFileSync(join(dir, 'tls.key.pem'), tls.keyPem);
    writeFileSync(join(dir, 'tls.cert.pem'), tls.certPem);
    const { runSimulateCommand } = await import('../src/sim/simulate.js');
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((s: string) => (out.push(s), true));
    process.stderr.write = (() => true);
    let code: number;
    try {
      code = await runSimulateCommand({
        url: t.dip.url,
        ca: join(t.config.dataDir, 'pki', 'ca.cert.pem'),
        market: join(dir, 'market.json'),
        suppliers: 3,
        mpans: 6,
        days: 3,
        dataServices: 2,
        meteringServices: 2,
        ldsos: 2,
        switchPercent: 50,
        listenHost: '127.0.0.1',
        tlsKey: join(dir, 'tls.key.pem'),
        tlsCert: join(dir, 'tls.cert.pem'),
        batch: 100,
        concurrency: 8,
        timeout: 15,
        idPrefix: 'A5',
        json: true,
      });
    } finally {
      process.stdout.write = write;
      process.stderr.write = err;
    }
    const report = JSON.parse(out.join('')) as { ok: boolean; mismatches: unknown[]; mode: string; switched: number; byChannel: Record<string, { sent: number }> };
    expect(report.mismatches).toEqual([]);
    expect(code).toBe(0);
    expect(report.mode).toBe('market');
    expect(report.switched).toBe(3);
    expect(report.byChannel['IF-021']!.sent).toBe(18);
  });
});
