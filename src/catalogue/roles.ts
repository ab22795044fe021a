import { CENTRAL_ROLES } from '../domain/channel.js';
import type { RoutingMode } from './types.js';

/**
 * Default sender and receiver roles per channel. The published API does not say who sends or receives
 * what; the only public source is a third-party table compiled from the programme's (non-public)
 * interface catalogue spreadsheet, written in prose ("Data Service (ADS, SDS, UMSDS)/ LDSO / MDS").
 * These are defaults an operator may override, so a readable, documented mapping is enough.
 */

/** DIP role codes (DT-009: 3–5 capitals), in the order used when a phrase expands to several. */
export const ROLE_CODES = [
  'SUP', 'REGS', 'ADS', 'SDS', 'UMSDS', 'MSA', 'MSS', 'UMSO', 'LDSO', 'MDS', 'LSS', 'EES', 'MDR', 'DCC', 'ECS', 'VAS', 'ISD',
] as const;

/** The DIP itself: sends IF-016 (replay) and receives IF-015 (replay request); the sender role of its test messages (status messages use 'STS'). */
export const DIP_ROLE = 'DIP';

const DATA_SERVICES = ['ADS', 'SDS', 'UMSDS'];
const METERING_SERVICES = ['MSA', 'MSS', 'UMSO'];

/**
 * Phrase → roles, tried in order on a segment that names no role code itself. More specific phrases
 * come first ("market-wide data service" before "data service").
 */
const PHRASES: ReadonlyArray<[RegExp, readonly string[]]> = [
  [/public \(all roles\)/i, ROLE_CODES],
  [/public/i, []], // "Public (via separate file-sharing mechanism)": outside the DIP
  [/market-?wide data service/i, ['MDS']],
  [/registration service/i, ['REGS']],
  [/load shaping/i, ['LSS']],
  [/meter data retr/i, ['MDR']], // the table spells it "Retriever" and "Retreiver"
  [/data communications company/i, ['DCC']],
  [/elexon central services/i, ['ECS']],
  [/incumbent metering service/i, ['MSA', 'MSS']],
  [/metering service/i, METERING_SERVICES],
  [/data service/i, DATA_SERVICES],
  [/supplier/i, ['SUP']],
  [/distributor/i, ['LDSO']],
  [/^dip\b/i, [DIP_ROLE]], // "DIP", "DIP Replay Service"
  [/^ms$/i, METERING_SERVICES],
  [/^ds$/i, DATA_SERVICES],
];

// eslint-disable-next-line security/detect-non-literal-regexp -- built from the constant ROLE_CODES (word characters only)
const CODE_WORD = new RegExp(`\\b(${ROLE_CODES.join('|')})\\b`, 'g');

/** Splits on / , & "and" "or" outside parentheses: "Data Service (ADS, SDS)/ LDSO & EES" → 3 segments. */
function segments(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    if (c === '(') depth++;
    if (c === ')') depth = Math.max(0, depth - 1);
    if (depth === 0) {
      const rest = text.slice(i);
      const sep = /^(?:[/,&]| and | or )/i.exec(rest);
      if (sep) {
        out.push(cur);
        cur = '';
        i += sep[0].length - 1;
        continue;
      }
    }
    cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Role codes named by a prose cell of the table, in order of first mention, without repeats. */
export function rolesFromText(text: string): string[] {
  const roles: string[] = [];
  const add = (r: string): void => {
    if (!roles.includes(r)) roles.push(r);
  };
  for (const seg of segments(text)) {
    const codes = [...seg.matchAll(CODE_WORD)].map((m) => m[1] ?? '');
    if (codes.length > 0) {
      codes.forEach(add);
      continue;
    }
    const hit = PHRASES.find(([re]) => re.test(seg));
    if (hit) hit[1].forEach(add);
  }
  return roles;
}

export interface TableRow {
  name: string;
  sender: string;
  receiver: string;
}

/** Reads `| IF-021/PUB-021 | name | sender | receiver |` rows, keyed by interface ID. */
export function parseRolesTable(markdown: string): Map<string, TableRow> {
  const rows = new Map<string, TableRow>();
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    // A row splits into ['', id, name, sender, receiver, ''].
    const id = /^((?:IF|REP)-\d{3}[A-Z]?)(?:\/|$)/.exec(cells[1] ?? '')?.[1];
    if (!id || cells.length < 6) continue;
    rows.set(id, { name: cells[2] ?? '', sender: cells[3] ?? '', receiver: cells[4] ?? '' });
  }
  return rows;
}

/**
 * Channels the third-party table leaves out: OpenDIP's own defaults, from the channel names in the
 * published API (reports come from the volume allocation service unless named otherwise).
 */
export const FALLBACK_ROLES: Readonly<Record<string, { senderRoles: string[]; receiverRoles: string[] }>> = {
  'IF-051': { senderRoles: ['REGS'], receiverRoles: ['EES'] }, // EES Refresh, like IF-050 "EES Exclusive Updates"
  'REP-002': { senderRoles: ['VAS'], receiverRoles: ['LDSO', 'SUP'] },
  'REP-002A': { senderRoles: ['VAS'], receiverRoles: ['LDSO'] },
  'REP-002B': { senderRoles: ['VAS'], receiverRoles: ['LDSO'] },
  'REP-003': { senderRoles: ['VAS'], receiverRoles: ['SUP'] },
  'REP-003A': { senderRoles: ['VAS'], receiverRoles: ['SUP'] },
  'REP-004': { senderRoles: ['VAS'], receiverRoles: ['SUP'] },
  'REP-006': { senderRoles: ['VAS'], receiverRoles: ['SUP', 'LDSO'] },
  'REP-007': { senderRoles: ['VAS'], receiverRoles: ['SUP'] },
  'REP-008': { senderRoles: ['MDS'], receiverRoles: ['LDSO'] },
  'REP-009': { senderRoles: ['VAS'], receiverRoles: ['SUP'] },
  'REP-900': { senderRoles: ['LDSO'], receiverRoles: ['SUP'] },
  'REP-901': { senderRoles: ['LDSO'], receiverRoles: ['LDSO', 'SUP'] },
};

/** Roles whose holder for a given MPAN is known from registration data, so MPAN lookup can find them. */
const MPAN_APPOINTED = new Set(['SUP', 'REGS', 'LDSO', 'ADS', 'SDS', 'UMSDS', 'MSA', 'MSS', 'UMSO', 'MDR']);

/**
 * Routing modes a channel supports by default:
 * - primary: the common block has A0, where the sender names recipients;
 * - secondary: the message carries an MPAN (M0/M1) and some receiving role is appointed per MPAN;
 * - always: a receiving role is a single central service (MDS, LSS, EES, …) or the channel is public.
 */
export function routingModesFor(commonBlocks: readonly string[], receiverRoles: readonly string[], isPublic: boolean): RoutingMode[] {
  const modes: RoutingMode[] = [];
  if (commonBlocks.includes('A0')) modes.push('primary');
  const hasMpan = commonBlocks.includes('M0') || commonBlocks.includes('M1');
  if (hasMpan && receiverRoles.some((r) => MPAN_APPOINTED.has(r))) modes.push('secondary');
  if (isPublic || receiverRoles.some((r) => CENTRAL_ROLES.has(r))) modes.push('always');
  return modes;
}
