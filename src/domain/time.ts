/** The DIP's wire date-time: exactly 25 characters, UTC with an explicit offset, e.g. 2022-03-21T19:05:00+00:00. */
export function dipDateTime(d: Date): string {
  return d.toISOString().slice(0, 19) + '+00:00';
}

export function yyyymmdd(d: Date): string {
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}

/** The wire date-time's shape: 25 characters, whole seconds, an explicit offset. */
const DIP_DATE_TIME = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)([+-])(\d\d):(\d\d)$/;

/**
 * A wire date-time (2022-03-21T19:05:00+00:00) as ms since the epoch, or why it is not one. Date.parse
 * alone is not enough: it rolls impossible calendar dates over (2026-02-30 becomes 2 March, 24:00:00
 * the next day) instead of refusing them, so every written field is checked against the instant it names.
 */
export function parseDipDateTime(text: string): { ms: number } | { problem: string } {
  const m = DIP_DATE_TIME.exec(text);
  if (!m) return { problem: '25 characters: date, T, time to the second, offset' };
  const [year, month, day, hour, minute, second, sign, offsetHours, offsetMinutes] = m.slice(1).map((f) => (f === '+' ? 1 : f === '-' ? -1 : Number(f))) as [number, number, number, number, number, number, number, number, number];
  if (month < 1 || month > 12) return { problem: `there is no month ${month}` };
  if (hour > 23 || minute > 59 || second > 59) return { problem: `${m[4]}:${m[5]}:${m[6]} is not a time of day` };
  if (offsetHours > 23 || offsetMinutes > 59) return { problem: `${m[7]}${m[8]}:${m[9]} is not a UTC offset` };
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999.
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  const written = d.getTime();
  // Month and time are in range, so a rolled-over day is the only way the written date can differ.
  if (d.getUTCDate() !== day) return { problem: `${m[1]}-${m[2]} has no day ${day}` };
  return { ms: written - sign * (offsetHours * 60 + offsetMinutes) * 60_000 };
}

/**
 * What is wrong with the time a sender says it sent something (a message's S1.senderTimestamp, a status
 * entry's sentTimestamp), as help naming `field`, or null: read as the wire date-time, not by Date.parse,
 * which rolls a day that does not exist (2026-02-30, 24:00:00) over to another and takes other shapes of
 * 25 characters as local time; and no further ahead of the DIP's clock than the allowed skew.
 */
export function sentTimeProblem(field: string, text: string, now: Date, maxSkewMs: number): string | null {
  const sent = parseDipDateTime(text);
  if ('problem' in sent) return `${field} '${text}' is not a date-time like 2022-03-21T19:05:00+00:00 (${sent.problem})`;
  if (sent.ms - now.getTime() > maxSkewMs) return `${field} ${text} is in the future (DIP time ${dipDateTime(now)})`;
  return null;
}

/**
 * What a portal form's date-time field (an HTML datetime-local: 2026-03-21T19:05, or with :SS; UTC unless
 * it names an offset) covers: its first and last millisecond, so that a window ending at "19:05" takes the
 * whole minute, as the API's datetimeTo takes the whole second it names. Null when it is no such date-time
 * or names a day that does not exist (checked like the wire date-time, not rolled over).
 */
export function formDateTime(text: string): { ms: number; lastMs: number } | null {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d)(:\d\d)?(Z|[+-]\d\d:\d\d)?$/i.exec(text.trim());
  if (!m) return null;
  const offset = m[3] === undefined || m[3].toUpperCase() === 'Z' ? '+00:00' : m[3];
  const parsed = parseDipDateTime(`${m[1]}${m[2] ?? ':00'}${offset}`);
  if ('problem' in parsed) return null;
  return { ms: parsed.ms, lastMs: parsed.ms + (m[2] === undefined ? 59_999 : 999) };
}

/** An ISO 8601 date, or date-time to the minute, second or a fraction of it, with Z, an offset or neither. */
const ISO_DATE_OR_DATE_TIME = /^(\d{4}-\d\d-\d\d)(?:T(\d\d:\d\d)(?::(\d\d)(\.\d+)?)?(Z|[+-]\d\d:\d\d)?)?$/i;

/**
 * An ISO date (2026-01-31) or date-time (2026-01-31T19:05, with :SS and a fraction, Z or ±HH:MM; UTC when it
 * names no offset) as the ms it starts at, or why it names no instant (a month, day or time of day that does
 * not exist: checked like the wire date-time, never rolled over). Null when the text has not that shape.
 */
export function parseIsoDateOrDateTime(text: string): { ms: number } | { problem: string } | null {
  const m = ISO_DATE_OR_DATE_TIME.exec(text);
  if (!m) return null;
  const offset = m[5] === undefined || m[5].toUpperCase() === 'Z' ? '+00:00' : m[5];
  const parsed = parseDipDateTime(`${m[1]}T${m[2] ?? '00:00'}:${m[3] ?? '00'}${offset}`);
  if ('problem' in parsed) return parsed;
  return { ms: parsed.ms + (m[4] === undefined ? 0 : Math.floor(Number(`0${m[4]}`) * 1000)) };
}

/**
 * An operator's or participant's instant, ISO 8601 (`dateAlone`: a date too, midnight UTC; otherwise a
 * date-time with its zone, Z or ±HH:MM, seconds and a fraction optional), as ms, or why it is not one,
 * naming `field`. Date.parse alone rolled impossible days over (2026-11-31 became 1 December, 24:30 the
 * next day) and an error then blamed another field; a date-time without a zone would be read in the
 * server's own zone.
 */
export function zonedInstant(field: string, text: string, dateAlone: boolean): { ms: number } | { problem: string } {
  const shape = dateAlone ? 'an ISO 8601 date (2026-12-04, midnight UTC) or date-time with its zone (2026-12-04T09:00:00Z)' : 'an ISO-8601 date-time with a zone, e.g. 2026-12-05T02:00:00Z';
  const parsed = parseIsoDateOrDateTime(text);
  if (parsed === null) return { problem: `${field}: '${text}' is not ${shape}` };
  if ('problem' in parsed) return { problem: `${field}: '${text}' names no instant: ${parsed.problem}` };
  const isDate = /^\d{4}-\d\d-\d\d$/.test(text);
  if (isDate && !dateAlone) return { problem: `${field}: '${text}' is a date alone: give the time and its zone, e.g. ${text}T02:00:00Z` };
  if (!isDate && !/(?:Z|[+-]\d\d:\d\d)$/i.test(text)) return { problem: `${field}: '${text}' has no time zone: add Z for UTC or an offset such as +01:00` };
  return parsed;
}
