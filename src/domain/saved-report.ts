import { isEmailAddress } from './onboarding.js';
import { DIP_ID_PATTERN } from './participant.js';

/**
 * A portal user's saved report (spec 5.11: "Users will be able to configure their individual reporting
 * ... requirements from the dashboard, e.g. via email"): a report and its filters under a name of the
 * user's, its period relative (the last 24 hours by hour, not fixed dates), so opening it runs the report
 * now; optionally e-mailed daily or weekly (src/pipeline/saved-report-mail.ts). Kept as well by
 * operator-API callers and participants' systems (src/api/saved-report-routes.ts), each under an owner key
 * of its own kind (reportOwner, systemOwner).
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The relative periods a report is shown over, each with the buckets it is counted in. */
export const REPORT_PERIODS = {
  day: { ms: DAY, granularity: 'hour', label: 'The last 24 hours, per hour' },
  week: { ms: 7 * DAY, granularity: 'day', label: 'The last 7 days, per day' },
  month: { ms: 30 * DAY, granularity: 'day', label: 'The last 30 days, per day' },
} as const satisfies Record<string, { ms: number; granularity: 'hour' | 'day'; label: string }>;

export type PeriodName = keyof typeof REPORT_PERIODS;
/** The names a `period` filter takes (src/portal/filters.ts refuses any other). */
export const PERIOD_NAMES = Object.keys(REPORT_PERIODS) as PeriodName[];

export interface Period {
  name: PeriodName;
  fromMs: number;
  toMs: number;
  granularity: 'hour' | 'day';
  label: string;
}

/** The period a `period` filter names, ending now. */
export function reportPeriod(key: PeriodName, now: number): Period {
  const p = REPORT_PERIODS[key];
  return { name: key, fromMs: now - p.ms, toMs: now, granularity: p.granularity, label: p.label };
}

/** The reports a definition names: their rows are what an e-mailed CSV holds (the page shows both). */
export const SAVED_REPORT_KINDS = ['throughput', 'latency'] as const;
export type SavedReportKind = (typeof SAVED_REPORT_KINDS)[number];

export const MAIL_SCHEDULES = ['daily', 'weekly'] as const;
export type MailSchedule = (typeof MAIL_SCHEDULES)[number];
/** A CSV of the report's rows attached, or a few lines of totals and a link to the portal's page. */
export const MAIL_FORMATS = ['csv', 'summary'] as const;
export type MailFormat = (typeof MAIL_FORMATS)[number];

/** What a saved report runs: the reports page's filters, the period relative to when it runs. */
export interface ReportDefinition {
  report: SavedReportKind;
  period: PeriodName;
  /** Interface IDs; empty: every channel. */
  channels: string[];
  sender: string | null;
  recipient: string | null;
}

export interface ReportMailing {
  to: string;
  every: MailSchedule;
  format: MailFormat;
}

export interface SavedReport {
  id: string;
  /** Its owner's key (reportOwner: a portal account's or an operator's; systemOwner: a participant system's): only it lists, opens and deletes the report. */
  owner: string;
  /** The participant the owner acts for (the report's viewer); null for an operator. */
  participantDipId: string | null;
  name: string;
  definition: ReportDefinition;
  mailing: ReportMailing | null;
  createdAt: number;
  /** When the next e-mail is due (null: not e-mailed). */
  nextDueAt: number | null;
}

/** The most reports one user saves: a definition is cheap, but each e-mailed one runs a report. */
export const SAVED_REPORTS_PER_USER = 20;
export const SAVED_REPORT_NAME_MAX = 80;

/** E-mails go out from this hour (UTC), weekly ones on Mondays: a report of "the last day" then covers yesterday's working hours. */
export const MAIL_HOUR_UTC = 6;

/** The first time a mailing of `every` is due after `now` (strictly after: a sent one is not due again at once). */
export function nextMailAfter(every: MailSchedule, now: number): number {
  const d = new Date(now);
  let t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), MAIL_HOUR_UTC);
  while (t <= now) t += DAY;
  if (every === 'weekly') while (new Date(t).getUTCDay() !== 1) t += DAY;
  return t;
}

/**
 * Characters a name may not hold: C0 and C1 controls and DEL (a line break would put free lines of the
 * user's into the DIP's own e-mail: secrev3 M1), the Unicode line and paragraph separators, and the
 * bidirectional marks, embeddings, overrides and isolates (text that reads otherwise than it is).
 */
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const UNSHOWABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * A user's text on one line: any UNSHOWABLE character as its code (`\u000d`), so a name saved before they
 * were refused still reads as the user's words, not as the DIP's lines (a mail's subject).
 */
export const oneLineUserText = (s: string): string => s.replace(UNSHOWABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
/** oneLineUserText in double quotes: how an e-mail's text quotes a user's words among its own. */
export const quotedUserText = (s: string): string => `"${oneLineUserText(s)}"`;

/** What a form or a request asks to save, as sent. */
export interface SavedReportInput {
  name: string;
  report: string;
  period: string;
  channels: string;
  sender: string;
  recipient: string;
  /** '' or 'none': not e-mailed. */
  every: string;
  format: string;
  email: string;
}

const oneOfList = <V extends string>(values: readonly V[], v: string): v is V => (values as readonly string[]).includes(v);

/**
 * The definition and mailing `input` asks for, or why not (naming the field). `channelId` gives an
 * interface ID in the catalogue's own spelling, undefined for none of this DIP's: an unknown one would
 * save a report that always shows nothing, and so would one saved as typed in another case (the report
 * compares channel IDs as stored).
 */
export function readSavedReport(input: SavedReportInput, channelId: (id: string) => string | undefined): { ok: true; name: string; definition: ReportDefinition; mailing: ReportMailing | null } | { ok: false; problem: string } {
  const name = input.name.trim();
  if (name === '' || name.length > SAVED_REPORT_NAME_MAX) return { ok: false, problem: `name: 1 to ${SAVED_REPORT_NAME_MAX} characters` };
  if (name.search(UNSHOWABLE) >= 0) return { ok: false, problem: 'name: one line of text, without line breaks, control characters or bidirectional overrides' };
  if (!oneOfList(SAVED_REPORT_KINDS, input.report)) return { ok: false, problem: `report: one of ${SAVED_REPORT_KINDS.join(', ')}` };
  if (!oneOfList(PERIOD_NAMES, input.period)) return { ok: false, problem: `period: one of ${PERIOD_NAMES.join(', ')}` };
  const given = input.channels.split(',').map((c) => c.trim()).filter((c) => c !== '');
  const unknown = given.filter((c) => channelId(c) === undefined);
  if (unknown.length) return { ok: false, problem: `channels: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} no channel of this DIP` };
  const channels = [...new Set(given.map((c) => channelId(c)!))];
  const party = (field: 'sender' | 'recipient'): string | null | { problem: string } => {
    const v = input[field].trim();
    if (v === '') return null;
    return DIP_ID_PATTERN.test(v) ? v : { problem: `${field}: a DIP ID (10 letters or digits)` };
  };
  const sender = party('sender');
  const recipient = party('recipient');
  if (typeof sender === 'object' && sender !== null) return { ok: false, ...sender };
  if (typeof recipient === 'object' && recipient !== null) return { ok: false, ...recipient };
  const definition: ReportDefinition = { report: input.report, period: input.period, channels, sender, recipient };
  const every = input.every.trim();
  if (every === '' || every === 'none') return { ok: true, name, definition, mailing: null };
  if (!oneOfList(MAIL_SCHEDULES, every)) return { ok: false, problem: `every: none, ${MAIL_SCHEDULES.join(' or ')}` };
  if (!oneOfList(MAIL_FORMATS, input.format)) return { ok: false, problem: `format: ${MAIL_FORMATS.join(' or ')}` };
  const to = input.email.trim();
  if (!isEmailAddress(to)) return { ok: false, problem: 'email: an address such as name@company.example, to send the report to' };
  return { ok: true, name, definition, mailing: { to, every, format: input.format } };
}

/** The reports page's query string that runs `d` (what "open" links to). */
export function definitionQuery(d: ReportDefinition): string {
  const q = new URLSearchParams({ period: d.period });
  if (d.channels.length) q.set('channel', d.channels.join(','));
  if (d.sender) q.set('sender', d.sender);
  if (d.recipient) q.set('recipient', d.recipient);
  return q.toString();
}

/** A definition in words, for the list and the e-mail. */
export function describeDefinition(d: ReportDefinition): string {
  const narrow = [d.channels.length ? `on ${d.channels.join(', ')}` : 'on every channel', d.sender ? `from ${d.sender}` : null, d.recipient ? `to ${d.recipient}` : null].filter((x) => x !== null);
  return `${d.report}, ${REPORT_PERIODS[d.period].label.toLowerCase()}, ${narrow.join(' ')}`;
}

/**
 * The owner key of an account's saved reports: its realm and username, since an operator and a
 * participant's user may bear the same name (the two realms of src/ports/portal-accounts.ts) and must
 * never see each other's reports. An operator-API caller is keyed the same way (`operator:<name>`): the
 * operator accounts' names are one namespace, and an operator's portal sign-in exists only for the
 * operator account of that name (POST /admin/portal/accounts), so it is the same operator, who sees the
 * same reports from either door.
 */
export function reportOwner(account: { participantDipId: string | null; username: string }): string {
  // The realm as src/ports/portal-accounts.ts's realmOf tells it: an operator's account has no participant.
  return `${account.participantDipId === null ? 'operator' : 'user'}:${account.username}`;
}

/**
 * The owner key of a participant's system calling the signed participant API (`participant:<DIP ID>`): a
 * realm of its own, so none of its users' (`user:<name>`, each their own) and no operator's: a user whose
 * name is a DIP ID still never sees its participant system's reports, nor the system a user's.
 */
export function systemOwner(dipId: string): string {
  return `participant:${dipId}`;
}

/** Whom a report's owner key names (reportOwner's and systemOwner's inverse): the realm has no colon, the name may. */
export type ReportOwner = { realm: 'operator' | 'user'; username: string } | { realm: 'participant'; dipId: string };

export function ownerOf(owner: string): ReportOwner | undefined {
  const at = owner.indexOf(':');
  const realm = owner.slice(0, at);
  const name = owner.slice(at + 1);
  if (realm === 'participant') return { realm, dipId: name };
  return realm === 'operator' || realm === 'user' ? { realm, username: name } : undefined;
}
