/**
 * Numbers a double cannot hold. The DIP reads every message with JSON.parse, which keeps a number as an
 * IEEE 754 double, and writes what it delivers with JSON.stringify, which writes that double's shortest
 * round-trip text. A number whose decimal value is not that double's (33.333333333333333333 is delivered
 * as 33.333333333333336, 12345678901234567890 as 12345678901234567000, 1e-400 as 0, 1e400 as null) would
 * be accepted and delivered altered, so it is refused at ingest. The published schemas allow such
 * numbers (`type: number` without tight bounds); any JSON reader holding doubles would alter them too.
 * Same values written differently (1.50 for 1.5, 1e3 for 1000, -0 for 0) are not altered.
 *
 * Cheap where it runs on every message: the pre-parse scan (json-depth.ts `walk`) flags an item holding
 * a number of more than 15 digits or with an exponent, since at most 15 significant digits always
 * survive a double (DBL_DIG); only a flagged item is read again here (hasAlteredNumber), and only an
 * item found guilty a third time, for the path (firstAlteredNumber).
 */
import { findInJson, numberEnd, stringEnd } from './json-depth.js';

/** A decimal's value as its significant digits (no leading or trailing zeros) and where its point goes: 0.digits × 10^exponent. */
interface Decimal {
  negative: boolean;
  digits: string;
  exponent: number;
}

/** A JSON number token (or Number#toString's text) as a Decimal; zero has no digits and no sign. */
function decimal(token: string): Decimal {
  const negative = token.startsWith('-');
  const unsigned = negative ? token.slice(1) : token;
  const e = unsigned.search(/e/i);
  const mantissa = e < 0 ? unsigned : unsigned.slice(0, e);
  // An exponent of absurd length is Infinity here: the digits then say the value is not the double's (0 or Infinity).
  const shift = e < 0 ? 0 : Number(unsigned.slice(e + 1));
  const point = mantissa.indexOf('.');
  const all = point < 0 ? mantissa : mantissa.slice(0, point) + mantissa.slice(point + 1);
  const whole = point < 0 ? mantissa.length : point;
  const lead = all.search(/[1-9]/);
  if (lead < 0) return { negative: false, digits: '', exponent: 0 };
  return { negative, digits: all.slice(lead).replace(/0+$/, ''), exponent: whole - lead + shift };
}

/** A plain decimal (no exponent) without the zeros that end its fraction, nor a point left bare; else itself. */
function trimmed(token: string): string {
  if (!token.includes('.') || /e/i.test(token)) return token;
  let end = token.length;
  while (token.charCodeAt(end - 1) === 0x30) end--;
  if (token.charCodeAt(end - 1) === 0x2e) end--;
  return token.slice(0, end);
}

/**
 * The text a number token is delivered as when its value is not the double's, else null (the same value,
 * however written). `null` for one beyond the largest double (JSON.stringify writes Infinity as null).
 */
export function alteredNumber(written: string): string | null {
  const value = Number(written);
  if (!Number.isFinite(value)) return 'null';
  const shortest = String(value);
  if (shortest === written) return null; // written as JSON.stringify writes it: the usual case
  if (trimmed(written) === shortest) return null; // or with zeros after its point (1.250000000000000)
  const sent = decimal(written);
  if (sameDecimal(sent, decimal(shortest))) return null;
  // A double written with more digits than its shortest text, up to 17 (what C's %.17g writes, Jansson
  // and Java before 19 for some values: 0.10000000000000001 for 0.1): the text is that double rounded to
  // its digits, so the sender wrote a double and every reader gets the same one back from either text.
  if (sent.digits.length <= MAX_DOUBLE_DIGITS && sameDecimal(sent, decimal(value.toPrecision(sent.digits.length)))) return null;
  return shortest;
}

/** The most significant digits a double ever needs to be written exactly enough to be read back (DBL_DECIMAL_DIG). */
const MAX_DOUBLE_DIGITS = 17;

const sameDecimal = (a: Decimal, b: Decimal): boolean => a.digits === b.digits && a.exponent === b.exponent && a.negative === b.negative;

/** The first number of a JSON text (that JSON.parse accepted) a double does not hold, with its path; null when none. */
export function firstAlteredNumber(text: string): { path: string; token: string; delivered: string } | null {
  return findInJson(text, {
    number: (path, token) => {
      const delivered = alteredNumber(token);
      return delivered === null ? null : { path, token, delivered };
    },
  });
}

/** Number tokens are ASCII. */
const latin1 = new TextDecoder('latin1');

/**
 * Whether the JSON bytes [start, end) hold a number a double does not hold: the scan's rule picks the
 * numbers worth comparing (more than 15 digits, or an exponent), and only those are decoded. Without the
 * path-keeping of firstAlteredNumber, which answers for a text this has found guilty: a sender whose
 * serialiser writes doubles with 17 digits (0.30000000000000004) has every item flagged by the scan, and
 * reading those again must stay cheap.
 */
export function hasAlteredNumber(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
  for (let i = start; i < end; i++) {
    const c = bytes[i]!;
    if (c === 0x22) {
      i = stringEnd(bytes, i, end);
    } else if (c - 0x30 < 10 && c >= 0x2d) {
      const e = numberEnd(bytes, i, end);
      if (e < 0 && alteredNumber(latin1.decode(bytes.subarray(i, -e))) !== null) return true;
      i = Math.abs(e) - 1;
    }
  }
  return false;
}

/** The longest number text quoted in an answer (a help text is at most 500 characters). */
const QUOTED_MAX = 60;
const quoted = (token: string): string => (token.length > QUOTED_MAX ? `${token.slice(0, QUOTED_MAX)}… (${token.length} characters)` : token);

/**
 * The answer to such a number (firstAlteredNumber's finding). `within` is the path of the text it was
 * found in and `how` how that text came (a decrypted CustomBlock), when not the item itself.
 */
export function alteredNumberHelp(found: { path: string; token: string; delivered: string }, within = '', how = ''): string {
  const path = within === '' || found.path === '' ? `${within}${found.path}` : `${within}.${found.path}`;
  const where = `${path === '' ? 'a number' : path}${how === '' ? '' : ` (${how})`} is`;
  const why =
    found.delivered === 'null'
      ? 'beyond the largest IEEE 754 double (about 1.8e308), and JSON readers, the DIP among them, hold numbers as doubles: it cannot be delivered'
      : `which an IEEE 754 double does not hold (JSON readers, the DIP among them, hold numbers as doubles): it would be delivered as ${found.delivered}`;
  return `${where} ${quoted(found.token)}, ${why}; send it with at most 15 significant digits, which always carry exactly`;
}
