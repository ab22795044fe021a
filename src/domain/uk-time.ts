/**
 * Times as people in Great Britain read them: UK local time (Europe/London, GMT in winter, BST in summer)
 * beside the UTC the DIP works in. The one place the portals, the e-mails and the public maintenance page
 * format a time for people; the rule for summer time is the runtime's time-zone database (Intl), never
 * one written here.
 */

export const UK_TIME_ZONE = 'Europe/London';

/** en-GB names Europe/London's offsets GMT and BST (other locales say GMT+1). */
const UK = new Intl.DateTimeFormat('en-GB', {
  timeZone: UK_TIME_ZONE,
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
  timeZoneName: 'short',
});

/** Seconds are said only when the instant has some (a window's start has none; an alarm's raising does). */
const withSeconds = (ms: number): boolean => Math.floor(ms / 1000) % 60 !== 0;

/** `2026-03-29 02:30 BST` (`02:30:12 BST` with seconds): the wall clock in the UK at `ms` and which of GMT and BST it keeps. */
export function ukTime(ms: number): string {
  const parts = UK.formatToParts(ms);
  const get = (type: Intl.DateTimeFormatPartTypes): string => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}${withSeconds(ms) ? `:${get('second')}` : ''} ${get('timeZoneName')}`;
}

/** `2026-03-29 01:30 UTC` (`01:30:12 UTC` with seconds): the same instant in UTC. */
export const utcTime = (ms: number): string => `${new Date(ms).toISOString().slice(0, withSeconds(ms) ? 19 : 16).replace('T', ' ')} UTC`;

/**
 * `2026-03-29 01:30 UTC (02:30 BST)`: UTC with UK local time beside it, the UK date said only when it is
 * not the UTC one. What the portals, e-mails and the public maintenance page show for an instant.
 */
export function utcAndUk(ms: number): string {
  const utc = utcTime(ms);
  const uk = ukTime(ms);
  return `${utc} (${uk.slice(0, 10) === utc.slice(0, 10) ? uk.slice(11) : uk})`;
}

/** utcAndUk, or a dash for no time (a portal's empty cell). */
export const utcAndUkOrDash = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '—' : utcAndUk(ms));
