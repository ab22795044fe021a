/**
 * The central register feed (spec 5.7.1), modelled on the published company details publication
 * (ISDPublication, DIPISDPublication: `marketParticipantDetail` with its `M16Row`s): for each company, rows
 * of MPID, market role, DIP ID, DIP role and the dates the row is effective between.
 */
import { DIP_ID_PATTERN, ROLE_PATTERN } from './participant.js';

export interface M16Row {
  MPID: string;
  marketRole: string | null;
  DIPID: string | null;
  DIPRole: string;
  datetimeFrom: string;
  datetimeTo: string | null;
}

/** One DIP ID's entry as the DIP keeps it (a registry record of kind `register`, versioned). */
export interface RegisterEntry {
  dipId: string;
  companyRegNumber: string;
  companyName: string | null;
  rows: Array<{ mpid: string; marketRole: string | null; role: string; from: number; to: number | null }>;
}

/** A feed that cannot be applied: every problem, by position and field. Nothing of it was applied. */
export class RegisterFeedError extends Error {
  readonly status = 400;
  constructor(readonly problems: string[]) {
    super(`the register feed was not applied: ${problems.slice(0, 20).join('; ')}${problems.length > 20 ? `; and ${problems.length - 20} more` : ''}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a feed (an array of marketParticipantDetail, or one) and groups its rows by DIP ID. Rows without a
 * DIP ID (a company still in qualification) are counted, not kept: the DIP has nobody to give them to.
 */
export function parseRegisterFeed(feed: unknown): { entries: RegisterEntry[]; withoutDipId: number } {
  const companies = Array.isArray(feed) ? feed : [feed];
  const problems: string[] = [];
  const byDipId = new Map<string, RegisterEntry>();
  let withoutDipId = 0;
  companies.forEach((c, i) => {
    const at = `[${i}]`;
    if (!isObject(c)) return problems.push(`${at}: a marketParticipantDetail object`);
    const reg = c.companyRegNumber;
    if (typeof reg !== 'string' || reg.length < 8 || reg.length > 10) problems.push(`${at}.companyRegNumber: 8 to 10 characters`);
    if (c.companyName !== undefined && c.companyName !== null && typeof c.companyName !== 'string') problems.push(`${at}.companyName: a string or null`);
    if (!Array.isArray(c.companyDetails)) return problems.push(`${at}.companyDetails: an array of M16 rows`);
    (c.companyDetails as unknown[]).forEach((r, j) => {
      const rat = `${at}.companyDetails[${j}]`;
      if (!isObject(r)) return problems.push(`${rat}: an M16 row object`);
      const bad = (field: string, why: string) => problems.push(`${rat}.${field}: ${why}`);
      if (typeof r.MPID !== 'string' || !/^[A-Z]{4}$/.test(r.MPID)) bad('MPID', '4 capital letters (DT-027)');
      if (typeof r.DIPRole !== 'string' || !ROLE_PATTERN.test(r.DIPRole)) bad('DIPRole', '3 to 5 capital letters (DT-009)');
      const from = typeof r.datetimeFrom === 'string' ? Date.parse(r.datetimeFrom) : NaN;
      if (Number.isNaN(from)) bad('datetimeFrom', 'an ISO 8601 date-time (DT-003)');
      const to = r.datetimeTo === null || r.datetimeTo === undefined ? null : typeof r.datetimeTo === 'string' ? Date.parse(r.datetimeTo) : NaN;
      if (to !== null && Number.isNaN(to)) bad('datetimeTo', 'an ISO 8601 date-time or null (DT-003N)');
      if (to !== null && !Number.isNaN(from) && to <= from) bad('datetimeTo', 'after datetimeFrom');
      if (r.DIPID === null || r.DIPID === undefined) {
        withoutDipId += 1;
        return undefined;
      }
      if (typeof r.DIPID !== 'string' || !DIP_ID_PATTERN.test(r.DIPID)) return bad('DIPID', '10 letters or digits (DT-006N), or null');
      const entry = byDipId.get(r.DIPID) ?? { dipId: r.DIPID, companyRegNumber: String(reg), companyName: (c.companyName as string | null | undefined) ?? null, rows: [] };
      if (entry.companyRegNumber !== reg) bad('DIPID', `${r.DIPID} also appears under company ${entry.companyRegNumber}`);
      entry.rows.push({ mpid: String(r.MPID), marketRole: typeof r.marketRole === 'string' ? r.marketRole : null, role: String(r.DIPRole), from, to });
      byDipId.set(r.DIPID, entry);
      return undefined;
    });
    return undefined;
  });
  if (problems.length) throw new RegisterFeedError(problems);
  const entries = [...byDipId.values()].map((e) => ({ ...e, rows: sortRows(e.rows) }));
  return { entries, withoutDipId };
}

const sortRows = (rows: RegisterEntry['rows']): RegisterEntry['rows'] =>
  [...rows].sort((a, b) => a.role.localeCompare(b.role) || a.mpid.localeCompare(b.mpid) || a.from - b.from);

/** The roles an entry gives at a time: rows whose dates include it. */
export function rolesAt(entry: RegisterEntry, now: number): string[] {
  return [...new Set(entry.rows.filter((r) => r.from <= now && (r.to === null || now < r.to)).map((r) => r.role))].sort();
}

/** Rescinded: the register lists the DIP ID, but no row is in force now or later. */
export function rescindedAt(entry: RegisterEntry, now: number): boolean {
  return entry.rows.every((r) => r.to !== null && r.to <= now);
}

export const sameEntry = (a: RegisterEntry, b: RegisterEntry): boolean => JSON.stringify(a) === JSON.stringify({ ...b, rows: sortRows(b.rows) });
