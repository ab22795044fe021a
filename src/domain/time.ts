/** The DIP's wire date-time: exactly 25 characters, UTC with an explicit offset, e.g. 2022-03-21T19:05:00+00:00. */
export function dipDateTime(d: Date): string {
  return d.toISOString().slice(0, 19) + '+00:00';
}

/** Parses a wire date-time (any ISO-8601 offset) to epoch milliseconds, or NaN. */
export function parseDipDateTime(s: string): number {
  return Date.parse(s);
}

export function yyyymmdd(d: Date): string {
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}
