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
