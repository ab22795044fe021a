import { createHash } from 'node:crypto';
import { maskedQueryPart, shownUrl } from './url-secrets.js';

/**
 * The API activity log (spec 5.8.1): one record per request to any listener, accepted or refused.
 * Records form hash chains: each carries the hash of the record before it in its chain, so a changed or
 * deleted record breaks every hash after it. One chain per writer (a DIP process), so several nodes of a
 * cluster append without coordinating with each other (see docs in README "API activity log").
 */
export interface ActivityEntry {
  /** Unique per request; returned to the caller in the `x-request-id` header. */
  requestId: string;
  /** Epoch milliseconds when the request arrived. */
  at: number;
  /** Which listener: `participant` (mTLS), `operator`, or another the DIP adds. */
  listener: string;
  /** The DIP ID the caller proved (or claimed, when refused), `operator`, or null when unknown. */
  caller: string | null;
  /**
   * The participant a DIP Connection Provider called for (the caller is then the provider), or null when
   * the caller acted for itself. Absent in records written before it was kept.
   */
  actingFor?: string | null;
  /** Client address as the socket saw it. */
  remote: string | null;
  method: string;
  url: string;
  /** HTTP status answered; null when the connection was refused before HTTP (a failed TLS handshake). */
  status: number | null;
  durationMs: number;
  /** The answer's body with personal data masked (MPANs, names, addresses), or a note when not kept. */
  responseBody: string | null;
}

/** An entry as stored: its place in its chain and the hashes that link it. */
export interface ChainedActivity extends ActivityEntry {
  chain: string;
  seq: number;
  prevHash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/** The hash of an entry at its place in the chain: SHA-256 over a fixed-order serialisation. */
export function activityHash(chain: string, seq: number, prevHash: string, e: ActivityEntry): string {
  // actingFor joins the hashed fields only when set: records written before it existed keep their hashes.
  const canonical = JSON.stringify([chain, seq, prevHash, e.requestId, e.at, e.listener, e.caller, e.remote, e.method, e.url, e.status, e.durationMs, e.responseBody, ...(e.actingFor ? [e.actingFor] : [])]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** Links entries onto a chain whose last record is (`seq`, `hash`); returns the records and the new head. */
export function chainEntries(chain: string, head: { seq: number; hash: string }, entries: readonly ActivityEntry[]): { records: ChainedActivity[]; head: { seq: number; hash: string } } {
  let { seq, hash } = head;
  const records = entries.map((e) => {
    seq += 1;
    const prevHash = hash;
    hash = activityHash(chain, seq, prevHash, e);
    return { ...e, chain, seq, prevHash, hash };
  });
  return { records, head: { seq, hash } };
}

/** What a verification found wrong first in a chain. */
export interface ChainBreak {
  chain: string;
  seq: number;
  reason: string;
}

/**
 * Checks a chain's records in order, starting after `anchor` (what a purge before 5.8.1 was kept moved
 * it to, or the genesis). Returns the first bad record, or null when the chain is whole.
 */
export class ChainChecker {
  private expectedSeq: number;
  private prevHash: string;
  constructor(
    readonly chain: string,
    anchor: { seq: number; hash: string },
  ) {
    this.expectedSeq = anchor.seq + 1;
    this.prevHash = anchor.hash;
  }

  check(r: ChainedActivity): ChainBreak | null {
    const at = (reason: string): ChainBreak => ({ chain: this.chain, seq: r.seq, reason });
    if (r.seq !== this.expectedSeq) return at(r.seq > this.expectedSeq ? `records ${this.expectedSeq}..${r.seq - 1} are missing (deleted)` : `record ${r.seq} appears twice or out of order`);
    if (r.prevHash !== this.prevHash) return at('its previous-record hash does not match the record before it (that record was changed or deleted)');
    if (activityHash(r.chain, r.seq, r.prevHash, r) !== r.hash) return at('its contents do not match its hash (the record was changed)');
    this.expectedSeq += 1;
    this.prevHash = r.hash;
    return null;
  }
}

// Keys whose values are personal data wherever they appear in an answer: people's names (an account's
// username and display name, a customer's or contact's first, last or full name), whatever sits under a
// customer, person or contact, addresses, contact details, MPANs; and the business payload of messages a
// pull or replay returns (the archive holds it, sealed). Credentials too (a session token, a new account's
// password and TOTP secret, an API key): the log is read by others than the caller they were answered to,
// so keeping one would hand it on. A bare `name` is a thing's (a channel, a schema, a column, an operator
// account, whose name the record's caller already says): kept, as is fileName.
// Unanchored, so that a body's text that no key of it matches cannot match (maskedBody's fast path).
const PII_KEY = /(?:user|display|customer|contact|first|last|full|given|family|middle|maiden|person)name|surname|customer|person|address|postcode|mpan|email|phone|contact|dateofbirth|customblock|payload|token|password|secret|totp|otpauth|apikey|privatekey/i;
// Keys whose values are URLs that may carry a secret (a webhook's `?code=…`): kept in their shown form
// (src/domain/url-secrets.ts), the one rule for such URLs, so the log still tells which endpoint it was.
const URL_KEY = /ur[il]$/i;
/** A URL key as it stands in a JSON text (maskedBody's fast path): the key's end, then its closing quote. */
const URL_KEY_TEXT = /ur[il]"/i;
// An MPAN core is 13 digits; a longer run of digits is something else (a timestamp, an ID).
const MPAN_TEXT = /(?<!\d)\d{13}(?!\d)/g;
/** MPAN_TEXT for a test (a global regular expression's test() moves its lastIndex). */
const MPAN_ANYWHERE = /(?<!\d)\d{13}(?!\d)/;
const MASK = '[masked]';

function maskValue(value: unknown, personal: boolean): unknown {
  if (value === null) return value;
  if (Array.isArray(value)) return value.map((v) => maskValue(v, personal));
  if (typeof value === 'object') {
    // Everything under a personal key (an address block) is personal too.
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => {
        const masked = personal || PII_KEY.test(k);
        return [k, !masked && URL_KEY.test(k) && typeof v === 'string' ? shownUrl(v).replace(MPAN_TEXT, MASK) : maskValue(v, masked)];
      }),
    );
  }
  if (personal) return MASK;
  return typeof value === 'string' ? value.replace(MPAN_TEXT, MASK) : value;
}

/**
 * A request's path and query as the activity log keeps it: MPANs masked wherever they are
 * (`/reports/mpan/…`, `where=MPAN:…`), and the whole value of a query parameter whose name is personal.
 */
export function maskedUrl(url: string): string {
  const at = url.indexOf('?');
  const path = maskedPath(url, at);
  if (at < 0) return path;
  const query = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      return eq >= 0 && PII_KEY.test(name) ? `${name}=${MASK}` : pair.replace(MPAN_TEXT, MASK);
    });
  return `${path}?${query.join('&')}`;
}

/**
 * The most characters of a request's URL the activity log keeps (README "API activity log"). Anyone who
 * reaches a listener chooses the URL, up to Node's 16 KB request head: kept whole, a stranger's flood of
 * unknown pages with 15,000-character queries grew the log by 1 TB a day. A real page's or API call's
 * address is far shorter, so nothing a caller did is lost to the cut, and its length is said.
 */
export const MAX_URL_CHARS = 2048;

/**
 * A request's URL as the activity log keeps it: masked (maskedUrl), then cut to MAX_URL_CHARS with a marker
 * saying how long it was. Masked first, so that an MPAN across the cut is not kept but for its last digit.
 */
export function keptUrl(url: string): string {
  return cutUrl(maskedUrl(url));
}

/**
 * A request's URL as a log line holds it (a request that failed, an answer cut off): the path with MPANs
 * masked, every query value hidden (`?where=…&limit=…`), cut as keptUrl. A filter may carry any personal
 * data (`where=MPAN:…`, a name, an address) and the log is read by whoever runs the host: the line needs
 * the route and which parameters were given, not their values. One rule for every listener.
 */
export function loggedUrl(url: string): string {
  const at = url.indexOf('?');
  const path = maskedPath(url, at);
  return cutUrl(at < 0 ? path : `${path}?${url.slice(at + 1).split('&').map(maskedQueryPart).join('&')}`);
}

/** The path of a request's URL (before `at`, its '?', or all of it) with MPANs masked (`/reports/mpan/…`). */
function maskedPath(url: string, at: number): string {
  return (at < 0 ? url : url.slice(0, at)).replace(MPAN_TEXT, MASK);
}

function cutUrl(masked: string): string {
  return masked.length <= MAX_URL_CHARS ? masked : `${masked.slice(0, MAX_URL_CHARS)}…[cut: ${masked.length} characters]`;
}

/**
 * A response body as the activity log keeps it: JSON with personal data masked; anything longer than
 * `maxBytes` is kept as a note of its size only (a pull of a thousand messages is in the archive already).
 */
export function maskedBody(body: string | null, maxBytes: number): string | null {
  if (body === null || body.length === 0) return null;
  if (body.length > maxBytes) return `[${body.length} bytes, not kept]`;
  try {
    const parsed = JSON.parse(body) as unknown;
    // Without a backslash, every key and string of the body is a substring of its text as it stands: a
    // text that no personal key, URL key nor any 13-digit run matches leaves maskValue nothing to mask. Most
    // answers (every 201 of a submission) are such, and the walk of each of their values cost more than
    // the parse (issue 9, bench/writer.ts).
    if (!body.includes('\\') && !PII_KEY.test(body) && !URL_KEY_TEXT.test(body) && !MPAN_ANYWHERE.test(body)) return JSON.stringify(parsed);
    return JSON.stringify(maskValue(parsed, false));
  } catch {
    return body.replace(MPAN_TEXT, MASK);
  }
}

/**
 * What the throughput report counts of a refused submission's answer (a StandardResponse): its entries,
 * one per item when the DIP read the batch item by item, one for a batch refused whole; and its MSG
 * code, that of the first entry naming why (neither a success nor MSG1000, which the items that did not
 * fail are answered with), else the first entry's.
 */
export interface RefusalSummary {
  entries: number;
  code: string;
}

const MSG_CODE = /^MSG\d{4}/;

function refusalSummary(parsed: unknown): RefusalSummary | null {
  const entries = typeof parsed === 'object' && parsed !== null ? (parsed as { messageArray?: unknown }).messageArray : undefined;
  if (!Array.isArray(entries) || entries.length === 0) return null;
  const texts = entries.map((e: unknown) => {
    const message = typeof e === 'object' && e !== null ? (e as { message?: unknown }).message : undefined;
    return typeof message === 'string' ? message : '';
  });
  // MSG1000 is also what the items that did not fail are answered with when a batch is refused for others:
  // the code is the failing item's (MSG1000 only when nothing else is named: a store that could not write).
  const code = MSG_CODE.exec(texts.find((t) => !t.startsWith('MSG0000') && !t.startsWith('MSG1000')) ?? texts[0]!)?.[0];
  return code ? { entries: entries.length, code } : null;
}

const LONG_REFUSAL = /^\[\d+ bytes, not kept: (\d+) entries, (MSG\d{4})\]$/;

/**
 * The note kept for a refusal's answer longer than the log keeps (a refused batch of many items): its
 * size as for any long answer, and what the throughput report counts of it, so that a large refused
 * batch is counted as the messages it held. Null when the answer is not a StandardResponse.
 */
export function longRefusalNote(body: string): string | null {
  let summary: RefusalSummary | null;
  try {
    summary = refusalSummary(JSON.parse(body));
  } catch {
    return null;
  }
  return summary ? `[${body.length} bytes, not kept: ${summary.entries} entries, ${summary.code}]` : null;
}

/** What a stored answer (masked JSON, or the note of a long refusal) tells of a refusal; null when nothing. */
export function readRefusal(stored: string | null): RefusalSummary | null {
  if (stored === null) return null;
  const note = LONG_REFUSAL.exec(stored);
  if (note) return { entries: Number(note[1]), code: note[2]! };
  try {
    return refusalSummary(JSON.parse(stored));
  } catch {
    return null;
  }
}
