import { createHash } from 'node:crypto';
import { gspGroupOf, mpanCore } from './messages.js';

/**
 * The simulator's own model of a market: who the participants are, and who is responsible for each
 * MPAN in each capacity, with history. It is kept independently of the DIP's MPAN lookup: the
 * simulator predicts routing from this model and checks the DIP against the prediction.
 */

/** The roles the simulator plays. Each simulated participant holds exactly one. */
export const SIM_ROLES = ['SUP', 'REGS', 'SDS', 'ADS', 'MSS', 'LDSO', 'MDS', 'LSS'] as const;
export type SimRole = (typeof SIM_ROLES)[number];

export function isSimRole(r: string): r is SimRole {
  return (SIM_ROLES as readonly string[]).includes(r);
}

/** A capacity an MPAN has one holder of at a time, and the roles that can hold it. */
export const MODEL_SLOTS = {
  SUP: ['SUP'],
  LDSO: ['LDSO'],
  DS: ['SDS', 'ADS', 'UMSDS'],
  MS: ['MSS', 'MSA', 'UMSO'],
} as const satisfies Record<string, readonly string[]>;
export type ModelSlot = keyof typeof MODEL_SLOTS;
export const MODEL_SLOT_NAMES = Object.keys(MODEL_SLOTS) as ModelSlot[];

export interface SimParticipant {
  dipId: string;
  role: SimRole;
  /** Human name in reports, e.g. SUP#2. */
  label: string;
}

/** Half-open period of responsibility [fromMs, toMs); toMs null while open. */
export interface ModelAppointment {
  slot: ModelSlot;
  dipId: string;
  fromMs: number;
  toMs: number | null;
}

export interface SimMpan {
  core: string;
  gspGroup: string;
  history: ModelAppointment[];
  /** Planned change of supplier: the incoming supplier and the data service it appoints. */
  changeOfSupplier: { incomingSupplier: string; newDataService: string } | null;
  /**
   * Planned appointment workflow (IF-031 … IF-037): the supplier asks for another data service, which
   * accepts (then it is appointed and the previous one de-appointed) or rejects.
   */
  appointment: { newDataService: string; accept: boolean } | null;
}

/** When the initial appointments (the load) start: long before any simulated day. */
export const INITIAL_FROM_MS = Date.UTC(2020, 0, 1);

export class MarketModel {
  readonly byId = new Map<string, SimParticipant>();

  constructor(
    readonly participants: SimParticipant[],
    readonly mpans: SimMpan[],
  ) {
    for (const p of participants) this.byId.set(p.dipId, p);
  }

  ofRole(role: SimRole): SimParticipant[] {
    return this.participants.filter((p) => p.role === role);
  }

  role(dipId: string): SimRole | undefined {
    return this.byId.get(dipId)?.role;
  }

  mpan(core: string): SimMpan {
    const m = this.mpans.find((x) => x.core === core);
    if (!m) throw new Error(`the market model has no MPAN ${core}`);
    return m;
  }

  holder(core: string, slot: ModelSlot, atMs: number): string | undefined {
    return this.mpan(core).history.find((a) => a.slot === slot && a.fromMs <= atMs && (a.toMs === null || atMs < a.toMs))?.dipId;
  }

  /** `dipId` holds `slot` from `fromMs` on: whoever held it then stops at `fromMs`. */
  appoint(core: string, slot: ModelSlot, dipId: string, fromMs: number): void {
    const m = this.mpan(core);
    for (const a of m.history) {
      if (a.slot === slot && a.fromMs < fromMs && (a.toMs === null || a.toMs > fromMs)) a.toMs = fromMs;
    }
    m.history = m.history.filter((a) => !(a.slot === slot && a.fromMs >= fromMs));
    m.history.push({ slot, dipId, fromMs, toMs: null });
    m.history.sort((a, b) => a.fromMs - b.fromMs);
  }
}

/** Role digit in the simulator's own DIP IDs: `<prefix><digit><7-digit index>`. */
const ROLE_DIGIT: Record<SimRole, string> = { SUP: '1', SDS: '2', ADS: '3', LDSO: '4', MDS: '5', LSS: '6', REGS: '7', MSS: '8' };

export interface MarketSize {
  suppliers: number;
  /** Data services; alternately SDS and ADS (at least one of each when two or more). */
  dataServices: number;
  meteringServices: number;
  ldsos: number;
}

/**
 * The participants of a simulated market, with DIP IDs the simulator makes up: 10 hex digits (the
 * published senderUniqueReference pattern embeds the sender's ID as 10 hex digits), the same for the
 * same prefix, so a rerun reuses (and re-onboards) the same participants.
 */
export function plannedParticipants(size: MarketSize, idPrefix: string): SimParticipant[] {
  if (!/^[0-9A-F]{2}$/.test(idPrefix)) throw new Error(`--id-prefix '${idPrefix}' must be two upper-case hex digits`);
  const out: SimParticipant[] = [];
  const add = (role: SimRole, n: number) => {
    for (let i = 1; i <= n; i++) out.push({ dipId: `${idPrefix}${ROLE_DIGIT[role]}${String(i).padStart(7, '0')}`, role, label: `${role}#${i}` });
  };
  add('SUP', size.suppliers);
  add('REGS', 1);
  const sds = Math.ceil(size.dataServices / 2);
  add('SDS', sds);
  add('ADS', size.dataServices - sds);
  add('MSS', size.meteringServices);
  add('LDSO', size.ldsos);
  add('MDS', 1);
  add('LSS', 1);
  return out;
}

export interface MpanPlan {
  mpans: number;
  /** Share of MPANs that change supplier, 0–100. */
  switchPercent: number;
  /** Share of the others whose supplier asks for another data service (default 20); every third is refused. */
  appointPercent?: number;
  seed: string;
}

function hashInt(seed: string): number {
  return createHash('sha256').update(seed).digest().readUInt32BE(0);
}

/**
 * MPANs with valid check digits under their distributors' IDs, each with a supplier, a distributor
 * (by GSP group), a data service and a metering service from INITIAL_FROM_MS; some planned to change
 * supplier. The same seed and participants give the same MPANs.
 */
export function buildMarket(participants: SimParticipant[], plan: MpanPlan): MarketModel {
  const of = (role: SimRole | SimRole[]) => participants.filter((p) => (Array.isArray(role) ? role : [role]).includes(p.role));
  const suppliers = of('SUP');
  const dataServices = of(['SDS', 'ADS']);
  const meteringServices = of('MSS');
  const ldsos = of('LDSO');
  const need = (list: SimParticipant[], what: string, n = 1) => {
    if (list.length < n) throw new Error(`the market needs at least ${n} ${what} (has ${list.length})`);
  };
  need(suppliers, 'supplier (SUP)');
  need(dataServices, 'data service (SDS or ADS)');
  need(ldsos, 'distributor (LDSO)');
  need(of('REGS'), 'registration service (REGS)');

  const seen = new Set<string>();
  const mpans: SimMpan[] = [];
  const switchEvery = plan.switchPercent <= 0 || suppliers.length < 2 ? 0 : Math.max(1, Math.round(100 / plan.switchPercent));
  const appointPercent = plan.appointPercent ?? 20;
  const appointEvery = appointPercent <= 0 || dataServices.length < 2 ? 0 : Math.max(1, Math.round(100 / appointPercent));
  let staying = 0;
  let appointments = 0;
  for (let i = 0; mpans.length < plan.mpans; i++) {
    const core = mpanCore(`${plan.seed}:${i}`);
    if (seen.has(core)) continue;
    seen.add(core);
    const n = mpans.length;
    const supplierIndex = hashInt(`sup:${core}`) % suppliers.length;
    const supplier = suppliers[supplierIndex]!;
    // A distributor serves whole GSP groups: the MPAN's distributor ID decides it.
    const ldso = ldsos[Number(core.slice(0, 2)) % ldsos.length]!;
    const ds = dataServices[hashInt(`ds:${core}`) % dataServices.length]!;
    const ms = meteringServices.length > 0 ? meteringServices[hashInt(`ms:${core}`) % meteringServices.length] : undefined;
    const history: ModelAppointment[] = [
      { slot: 'SUP', dipId: supplier.dipId, fromMs: INITIAL_FROM_MS, toMs: null },
      { slot: 'LDSO', dipId: ldso.dipId, fromMs: INITIAL_FROM_MS, toMs: null },
      { slot: 'DS', dipId: ds.dipId, fromMs: INITIAL_FROM_MS, toMs: null },
      ...(ms ? [{ slot: 'MS' as const, dipId: ms.dipId, fromMs: INITIAL_FROM_MS, toMs: null }] : []),
    ];
    let changeOfSupplier: SimMpan['changeOfSupplier'] = null;
    if (switchEvery > 0 && n % switchEvery === 0) {
      const incomingIndex = (supplierIndex + 1) % suppliers.length;
      // Each supplier has its favourite data service: sometimes the one already there, often not.
      changeOfSupplier = { incomingSupplier: suppliers[incomingIndex]!.dipId, newDataService: dataServices[incomingIndex % dataServices.length]!.dipId };
    }
    let appointment: SimMpan['appointment'] = null;
    if (changeOfSupplier === null && appointEvery > 0 && ++staying % appointEvery === 0) {
      const next = dataServices[(dataServices.indexOf(ds) + 1) % dataServices.length]!;
      appointment = { newDataService: next.dipId, accept: appointments++ % 3 !== 2 };
    }
    mpans.push({ core, gspGroup: gspGroupOf(core), history, changeOfSupplier, appointment });
  }
  return new MarketModel(participants, mpans);
}

/** Rows of the bulk format `dip mpan load` reads (mpan,slot,dip_id,effective_from,effective_to). */
export function initialLoadRows(model: MarketModel): Array<{ mpan: string; slot: ModelSlot; dipId: string; effectiveFrom: string; effectiveTo: string | null }> {
  return model.mpans.flatMap((m) =>
    m.history.map((a) => ({
      mpan: m.core,
      slot: a.slot,
      dipId: a.dipId,
      effectiveFrom: new Date(a.fromMs).toISOString(),
      effectiveTo: a.toMs === null ? null : new Date(a.toMs - 1000).toISOString(),
    })),
  );
}

export function initialLoadCsv(model: MarketModel): string {
  const rows = initialLoadRows(model).map((r) => [r.mpan, r.slot, r.dipId, r.effectiveFrom, r.effectiveTo ?? ''].join(','));
  return ['mpan,slot,dip_id,effective_from,effective_to', ...rows].join('\n') + '\n';
}
