/** The DIP's wire date-time: exactly 25 characters, UTC with an explicit offset, e.g. 2022-03-21T19:05:00+00:00. */
export function dipDateTime(d: Date): string {
  return d.toISOString().slice(0, 19) + '+00:00';
}

export function yyyymmdd(d: Date): string {
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}
