/**
 * MPAN address lookup (spec 5.5.14): who is responsible for an MPAN in each appointed capacity, with
 * history, so that a message about an earlier day reaches whoever was responsible that day.
 *
 * A "slot" is a capacity an MPAN has exactly one holder of at a time. The DIP ID holding a slot receives
 * a channel's message by secondary routing when it holds one of the slot's roles that receives on it.
 */
export const SLOT_ROLES = {
  SUP: ['SUP'],
  LDSO: ['LDSO'],
  DS: ['SDS', 'ADS', 'UMSDS'],
  MS: ['MSS', 'MSA', 'UMSO'],
  MDR: ['MDR'],
} as const;

export type Slot = keyof typeof SLOT_ROLES;
export const SLOTS = Object.keys(SLOT_ROLES) as Slot[];

export function isSlot(s: string): s is Slot {
  return (SLOTS as string[]).includes(s);
}

/** One period of responsibility: [fromMs, toMs], toMs null while open. */
export interface Appointment {
  mpan: string;
  slot: Slot;
  dipId: string;
  fromMs: number;
  toMs: number | null;
}

/** A change read from a registration message or a load file: an appointment, or the end of one. */
export type AppointmentChange =
  | { kind: 'appoint'; mpan: string; slot: Slot; dipId: string; fromMs: number; toMs: number | null }
  | { kind: 'end'; mpan: string; slot: Slot; dipId: string; toMs: number };

/**
 * Folds a change into one slot's history (sorted by fromMs). An appointment from D closes whatever
 * was open before D and runs until the next known appointment; an end closes the named holder's period.
 */
export function applyChange(history: readonly Appointment[], change: AppointmentChange): Appointment[] {
  const others = history.filter((a) => a.slot !== change.slot);
  return [...others, ...applyToSlot(history.filter((a) => a.slot === change.slot), change)];
}

function applyToSlot(history: readonly Appointment[], change: AppointmentChange): Appointment[] {
  const list = history.map((a) => ({ ...a }));
  if (change.kind === 'end') {
    const open = list.filter((a) => a.dipId === change.dipId && a.fromMs <= change.toMs).at(-1);
    if (open && (open.toMs === null || open.toMs > change.toMs)) open.toMs = change.toMs;
    return list;
  }
  const kept = list.filter((a) => a.fromMs !== change.fromMs);
  kept.push({ mpan: change.mpan, slot: change.slot, dipId: change.dipId, fromMs: change.fromMs, toMs: change.toMs });
  kept.sort((a, b) => a.fromMs - b.fromMs);
  for (let i = 0; i < kept.length - 1; i++) {
    const cur = kept[i]!;
    const nextFrom = kept[i + 1]!.fromMs;
    if (cur.toMs === null || cur.toMs >= nextFrom) cur.toMs = nextFrom - 1;
  }
  return kept;
}

export function holderAt(history: readonly Appointment[], slot: Slot, atMs: number): string | undefined {
  return history.find((a) => a.slot === slot && a.fromMs <= atMs && (a.toMs === null || atMs <= a.toMs))?.dipId;
}

/** A holder the lookup names for a slot on the addressing date who cannot receive in that capacity. */
export interface SkippedHolder {
  dipId: string;
  slot: Slot;
  /** The roles it holds; undefined when it is not a registered participant. */
  roles: readonly string[] | undefined;
  /** The slot's roles that receive on the channel (one of which it would need). */
  wanted: readonly string[];
}

/**
 * The DIP IDs secondary routing adds for a channel: for every slot with a role that receives on the
 * channel, the slot's holder on the addressing date, if that participant holds such a role. The holders
 * left out are kept apart, so a message that reaches nobody can be refused naming them.
 */
export function secondaryRecipients(
  receiverRoles: readonly string[],
  history: readonly Appointment[],
  atMs: number,
  rolesOf: (dipId: string) => readonly string[] | undefined,
): { recipients: string[]; skipped: SkippedHolder[]; capacities: Map<string, string[]> } {
  const recipients: string[] = [];
  const skipped: SkippedHolder[] = [];
  // The roles each is reached in (src/domain/channel.ts capacityCode): a holder of two slots, both of them.
  const capacities = new Map<string, string[]>();
  for (const slot of SLOTS) {
    const wanted: readonly string[] = SLOT_ROLES[slot].filter((r) => receiverRoles.includes(r));
    if (wanted.length === 0) continue;
    const holder = holderAt(history, slot, atMs);
    if (holder === undefined) continue;
    const roles = rolesOf(holder);
    const held = roles?.filter((r) => wanted.includes(r)) ?? [];
    const known = capacities.get(holder);
    if (known) known.push(...held);
    else if (held.length > 0) {
      recipients.push(holder);
      capacities.set(holder, [...held]);
    } else skipped.push({ dipId: holder, slot, roles, wanted });
  }
  return { recipients, skipped, capacities };
}

/** Which keys of a registration message's blocks appoint or end a slot, and their date keys. */
const APPOINT_RULES: ReadonlyArray<{ slot: Slot; id: string; from: readonly string[] }> = [
  { slot: 'SUP', id: 'incomingSupplierDIPID', from: ['supplierEffectiveFromDate', 'incomingSupplierEffectiveFromDate'] },
  { slot: 'SUP', id: 'supplierDIPID', from: ['supplierEffectiveFromDate'] },
  { slot: 'DS', id: 'incomingDataServiceDIPID', from: ['incomingDataServiceEffectiveFromDate', 'dataServiceEffectiveFromDate'] },
  { slot: 'MS', id: 'incomingMeteringServiceDIPID', from: ['incomingMeteringServiceEffectiveFromDate', 'meteringServiceEffectiveFromDate'] },
  // The assigned MDR: B019 (IF-035 DSAppAccepted and IMS-SendMTD, IF-036 DSAppActive), B092 and B066 (IF-035 SDS- and DCC-MDROutcome).
  { slot: 'MDR', id: 'assignedMDRDIPID', from: ['assignedMDREffectiveFromDate'] },
];
const END_RULES: ReadonlyArray<{ slot: Slot; id: string; to: readonly string[] }> = [
  { slot: 'SUP', id: 'outgoingSupplierDIPID', to: ['supplierEffectiveToDate', 'outgoingSupplierEffectiveToDate'] },
  { slot: 'DS', id: 'deAppointedDataServiceDIPID', to: ['dataServiceEffectiveToDate'] },
  { slot: 'MS', id: 'deAppointedMeteringServiceDIPID', to: ['meteringServiceEffectiveToDate'] },
  // B083, MDR End Date (IF-063 MDRStop): the same key as the appointment, with a to-date instead.
  { slot: 'MDR', id: 'assignedMDRDIPID', to: ['assignedMDREffectiveToDate'] },
];

/**
 * DI-979 outcomes after which responsibility stays as it was: the request was rejected (R) or lapsed (L).
 * An MDR outcome names the MDR whatever its outcome (B066's own responseCode, B099 beside B092).
 */
const NOT_TAKEN = new Set(['R', 'L']);
const notTaken = (block: Json): boolean => typeof block.responseCode === 'string' && NOT_TAKEN.has(block.responseCode);

type Json = Record<string, unknown>;

/**
 * Reads the changes of responsibility a registration message carries: the supplier, data service,
 * metering service and MDR appointed or de-appointed in its blocks, and the MPAN's distributor (M0).
 * A message whose outcome is a rejection or a lapse changes no appointment.
 */
export function changesFromMessage(message: { payload: { CommonBlock: Json; CustomBlock?: Json } }): AppointmentChange[] {
  const m0 = message.payload.CommonBlock.M0 as Json | undefined;
  const mpan = typeof m0?.MPANCore === 'string' ? m0.MPANCore : null;
  if (mpan === null) return [];
  const changes: AppointmentChange[] = [];
  if (typeof m0?.distributorDIPID === 'string') {
    changes.push({ kind: 'appoint', mpan, slot: 'LDSO', dipId: m0.distributorDIPID, fromMs: 0, toMs: null });
  }
  const blocks = Object.values(message.payload.CustomBlock ?? {}).filter((b): b is Json => typeof b === 'object' && b !== null && !Array.isArray(b));
  if (blocks.some(notTaken)) return changes;
  for (const b of blocks) {
    for (const rule of APPOINT_RULES) {
      const dipId = b[rule.id];
      const from = firstDate(b, rule.from);
      if (typeof dipId === 'string' && from !== null) changes.push({ kind: 'appoint', mpan, slot: rule.slot, dipId, fromMs: from, toMs: null });
    }
    for (const rule of END_RULES) {
      const dipId = b[rule.id];
      const to = firstDate(b, rule.to);
      if (typeof dipId === 'string' && to !== null) changes.push({ kind: 'end', mpan, slot: rule.slot, dipId, toMs: to });
    }
  }
  return changes;
}

function firstDate(block: Json, keys: readonly string[]): number | null {
  for (const k of keys) {
    const v = block[k];
    if (typeof v === 'string') {
      const ms = Date.parse(v);
      if (!Number.isNaN(ms)) return ms;
    }
  }
  return null;
}

/**
 * The date a message is addressed for: the value at `path` under `payload` (e.g. IF-021's settlement
 * day), else the time of receipt. `[n]` indexes an array.
 */
export function addressingDate(message: { payload: unknown }, path: string | undefined, receivedMs: number): number {
  if (!path) return receivedMs;
  let node: unknown = message.payload;
  for (const step of path.split('.')) {
    const m = /^(.+?)(?:\[(\d+)\])?$/.exec(step);
    if (!m || typeof node !== 'object' || node === null) return receivedMs;
    node = (node as Json)[m[1]!];
    if (m[2] !== undefined) node = Array.isArray(node) ? node[Number(m[2])] : undefined;
  }
  const ms = typeof node === 'string' ? Date.parse(node.length === 10 ? `${node}T00:00:00Z` : node) : NaN;
  return Number.isNaN(ms) ? receivedMs : ms;
}
