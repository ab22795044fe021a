/**
 * iCalendar (RFC 5545), as much as a feed of maintenance windows needs: events in UTC, text escaped
 * (3.3.11), lines ended CRLF and folded at 75 octets (3.1) without splitting a character.
 */

const ENCODER = new TextEncoder();

export interface CalendarEvent {
  uid: string;
  /** Epoch ms. */
  start: number;
  end: number;
  /** When this version of the event was made (DTSTAMP). */
  stamp: number;
  /** Counts the event's revisions from 0, so that a calendar replaces the copy it holds. */
  sequence: number;
  summary: string;
  description: string;
  /** Set for an event called off (STATUS, RFC 5545 3.8.1.11): a calendar holding it marks it cancelled. */
  cancelled?: true;
}

/** `20261205T020000Z`. */
export const calendarUtc = (ms: number): string => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

/** TEXT escaped: backslash, semicolon, comma, and newlines as `\n`. */
export const calendarText = (s: string): string => s.replace(/[\\;,]/g, (c) => `\\${c}`).replace(/\r\n|\r|\n/g, '\\n');

/** A content line folded at 75 octets: the next line starts with a space. */
export function foldLine(line: string): string {
  const out: string[] = [];
  let current = '';
  let octets = 0;
  for (const ch of line) {
    const size = ENCODER.encode(ch).length;
    // The first line holds 75 octets; each continuation line's leading space counts against its 75.
    if (octets + size > (out.length === 0 ? 75 : 74)) {
      out.push(current);
      current = '';
      octets = 0;
    }
    current += ch;
    octets += size;
  }
  out.push(current);
  return out.join('\r\n ');
}

export function calendar(name: string, events: readonly CalendarEvent[]): string {
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//OpenDIP//Maintenance windows//EN', 'CALSCALE:GREGORIAN', 'METHOD:PUBLISH', `X-WR-CALNAME:${calendarText(name)}`];
  for (const e of events) {
    lines.push(
      'BEGIN:VEVENT',
      `UID:${calendarText(e.uid)}`,
      `DTSTAMP:${calendarUtc(e.stamp)}`,
      `SEQUENCE:${e.sequence}`,
      `DTSTART:${calendarUtc(e.start)}`,
      `DTEND:${calendarUtc(e.end)}`,
      `SUMMARY:${calendarText(e.summary)}`,
      `DESCRIPTION:${calendarText(e.description)}`,
      ...(e.cancelled ? ['STATUS:CANCELLED'] : []),
      'END:VEVENT',
    );
  }
  lines.push('END:VCALENDAR');
  return `${lines.map(foldLine).join('\r\n')}\r\n`;
}
