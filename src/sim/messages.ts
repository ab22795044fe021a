import { createHash, randomBytes } from 'node:crypto';
import { dipDateTime, yyyymmdd } from '../domain/time.js';

/** Weights of the standard MPAN core check digit, one per digit of the first twelve. */
const MPAN_PRIMES = [3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43] as const;

/** Check digit of the first 12 digits of an MPAN core: Σ digit × prime, mod 11, mod 10. */
export function mpanCheckDigit(first12: string): number {
  if (!/^\d{12}$/.test(first12)) throw new Error(`mpanCheckDigit: expected 12 digits, got '${first12}'`);
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += Number(first12[i]) * (MPAN_PRIMES[i] ?? 0);
  return (sum % 11) % 10;
}

/** Distributor IDs (the first two digits of an MPAN core) of the 14 GSP groups, with their group. */
const DISTRIBUTORS: ReadonlyArray<readonly [string, string]> = [
  ['10', '_A'], ['11', '_B'], ['12', '_C'], ['13', '_D'], ['14', '_E'], ['15', '_F'], ['16', '_G'],
  ['17', '_P'], ['18', '_N'], ['19', '_J'], ['20', '_H'], ['21', '_K'], ['22', '_L'], ['23', '_M'],
];

function digest(seed: string): Buffer {
  return createHash('sha256').update(seed).digest();
}

/** A valid 13-digit MPAN core, the same for the same seed, under one of the 14 distributor IDs. */
export function mpanCore(seed: string | number): string {
  const h = digest(`mpan:${seed}`);
  const [distributor] = DISTRIBUTORS[(h[0] ?? 0) % DISTRIBUTORS.length] ?? DISTRIBUTORS[0] ?? ['10', '_A'];
  let body = '';
  for (let i = 1; body.length < 10; i++) body += String((h[i] ?? 0) % 10);
  const first12 = distributor + body;
  return first12 + String(mpanCheckDigit(first12));
}

/** GSP group of an MPAN core's distributor ID, e.g. `_C` for `12…` (London). */
export function gspGroupOf(mpan: string): string {
  return DISTRIBUTORS.find(([d]) => mpan.startsWith(d))?.[1] ?? '_A';
}

/**
 * Typical domestic half-hourly import (kWh) by UTC half-hour: a low night, a morning rise, a daytime
 * plateau and an evening peak.
 */
const DOMESTIC_PROFILE = [
  0.16, 0.15, 0.14, 0.13, 0.12, 0.12, 0.12, 0.12, 0.12, 0.12, 0.13, 0.15, // 00:00–06:00
  0.22, 0.3, 0.38, 0.36, 0.3, 0.26, 0.24, 0.23, 0.23, 0.24, 0.25, 0.27, // 06:00–12:00
  0.28, 0.26, 0.24, 0.23, 0.23, 0.25, 0.3, 0.38, 0.52, 0.64, 0.7, 0.68, // 12:00–18:00
  0.62, 0.55, 0.5, 0.46, 0.42, 0.38, 0.34, 0.3, 0.26, 0.22, 0.19, 0.17, // 18:00–24:00
] as const;

export interface BuildIF021Options {
  senderDipId: string;
  /** Data service role the sender acts in: SDS, ADS or UMSDS. */
  senderRole: string;
  mpan?: string;
  /** Last segment of the sender unique reference; random when absent. */
  uniqueSuffix?: string;
  /** Present → an A0 block naming them (secondary and always stay empty: the DIP fills those). */
  primaryRecipients?: string[];
  envTag?: string;
  /** UTC settlement day, YYYY-MM-DD; defaults to the day before `now`. */
  settlementDate?: string;
  eventCode?: 'ActivePower' | 'ReactivePower';
  now?: Date;
  distributorDipId?: string;
}

export interface ConsumptionPeriod {
  sp: string;
  v: string;
  q: string;
  e: string | null;
  arc: string | null;
}

export interface IF021Item {
  payload: {
    CommonBlock: {
      S0: { interfaceID: 'IF-021'; schemaVersion: string; eventCode: string };
      S1: {
        environmentTag: string;
        subText: string | null;
        senderUniqueReference: string;
        senderTimestamp: string;
        senderDIPID: string;
        senderRoleID: string;
        senderCorrelationID: string | null;
        DIPConnectionProviderID: string | null;
      };
      A0?: { primaryRecipients: string[]; secondaryRecipients: string[]; always: string[] };
      M0: { MPANCore: string; distributorDIPID: string; GSPGroupID: string };
    };
    CustomBlock: {
      B044: { issuingDataServiceDIPID: string };
      B067: { connectionTypeIndicator: string; connectionTypeEffectiveFromDate: string };
      B900: {
        MQID: { measurementQuantityID: string };
        settlementDayConsumptionPeriods: Array<{
          settlementDay: { settlementDayDate: string; periodDuration: number };
          consumptionPeriods: ConsumptionPeriod[];
        }>;
      };
    };
  };
}

/** The sender unique reference's participant segment is 10 hex digits (DT-995). */
const HEX_DIP_ID = /^[0-9a-f]{10}$/i;

/**
 * A valid IF-021 (UTC settlement period consumption) message: one MPAN, one UTC settlement day of 48
 * actual half-hourly values. Values are plausible and repeatable for the same MPAN and day.
 */
export function buildIF021(opts: BuildIF021Options): IF021Item {
  if (!HEX_DIP_ID.test(opts.senderDipId)) {
    // DT-995's pattern puts the sender's DIP ID in a [0-9a-fA-F]{10} segment: other IDs cannot form a valid reference.
    throw new Error(`buildIF021: sender DIP ID '${opts.senderDipId}' is not 10 hex digits, so no valid senderUniqueReference can carry it`);
  }
  const now = opts.now ?? new Date();
  const eventCode = opts.eventCode ?? 'ActivePower';
  const mpan = opts.mpan ?? mpanCore(`${opts.senderDipId}:${opts.uniqueSuffix ?? 'default'}`);
  const day = opts.settlementDate ? new Date(`${opts.settlementDate}T00:00:00Z`) : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - 1));
  if (Number.isNaN(day.getTime())) throw new Error(`buildIF021: settlementDate '${opts.settlementDate ?? ''}' is not YYYY-MM-DD`);
  const suffix = opts.uniqueSuffix ?? randomBytes(8).toString('hex');
  const distributor = mpan.slice(0, 2);

  const noise = digest(`consumption:${mpan}:${dipDateTime(day)}:${eventCode}`);
  const scale = eventCode === 'ReactivePower' ? 0.3 : 1;
  const periods: ConsumptionPeriod[] = DOMESTIC_PROFILE.map((base, i) => {
    const jitter = 0.85 + ((noise[i % noise.length] ?? 0) / 255) * 0.3; // ±15%
    return {
      sp: dipDateTime(new Date(day.getTime() + (i + 1) * 30 * 60_000)), // period end, UTC
      v: (base * scale * jitter).toFixed(3),
      q: 'A',
      e: null,
      arc: null,
    };
  });

  const s1: IF021Item['payload']['CommonBlock']['S1'] = {
    environmentTag: opts.envTag ?? 'DEV',
    subText: null,
    senderUniqueReference: `S-IF-021-${opts.senderDipId}-${opts.senderRole}-${yyyymmdd(now)}-${suffix}`,
    senderTimestamp: dipDateTime(now),
    senderDIPID: opts.senderDipId,
    senderRoleID: opts.senderRole,
    senderCorrelationID: null,
    DIPConnectionProviderID: null,
  };
  // Block order as in the spec: S0, S1, A0, M0.
  const commonBlock: IF021Item['payload']['CommonBlock'] = {
    S0: { interfaceID: 'IF-021', schemaVersion: '011', eventCode: `[${eventCode}]` },
    S1: s1,
    ...(opts.primaryRecipients ? { A0: { primaryRecipients: [...opts.primaryRecipients], secondaryRecipients: [], always: [] } } : {}),
    M0: {
      MPANCore: mpan,
      distributorDIPID: opts.distributorDipId ?? `LDSO${distributor}0000`,
      GSPGroupID: gspGroupOf(mpan),
    },
  };
  const connectedSince = new Date(Date.UTC(day.getUTCFullYear() - 1, day.getUTCMonth(), 1));
  return {
    payload: {
      CommonBlock: commonBlock,
      CustomBlock: {
        B044: { issuingDataServiceDIPID: opts.senderDipId },
        B067: { connectionTypeIndicator: 'W', connectionTypeEffectiveFromDate: dipDateTime(connectedSince) },
        B900: {
          MQID: { measurementQuantityID: eventCode === 'ReactivePower' ? 'RI' : 'AI' },
          settlementDayConsumptionPeriods: [
            { settlementDay: { settlementDayDate: dipDateTime(day), periodDuration: 30 }, consumptionPeriods: periods },
          ],
        },
      },
    },
  };
}
