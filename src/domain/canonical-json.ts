/**
 * Reusing a sender's bytes for what the DIP writes back out. The outbound copy of a message is
 * `JSON.stringify` of the stamped message, and most of its bytes are the CustomBlock, which the DIP
 * passes on untouched: when the sender already wrote that block exactly as `JSON.stringify` would, the
 * sender's text can be spliced in instead of serialising the parsed object again (≈ half the cost of
 * accepting an IF-021 on the ingest thread, bench/hotpath.ts `stamp` vs `splice`).
 *
 * "Exactly as JSON.stringify would" is decided on the raw bytes, conservatively: anything that might
 * serialise differently is refused, and the caller then stringifies as before. Refused:
 *   - whitespace between tokens;
 *   - string escapes other than \" \\ \b \f \n \r \t (stringify never writes \/ and writes \u only for
 *     the control characters without a short form and for lone surrogates);
 *   - numbers whose shortest round trip is other text (1.0, 1e3, -0, 0.10, 12345678901234567890);
 *   - object keys starting with a digit (JSON.parse moves array-index keys to the front);
 *   - a key given twice in one object (JSON.parse keeps one of them).
 * Bytes of 0x80 and above are passed through: the caller decodes the span from the same buffer it parsed,
 * and a span starts and ends on ASCII brackets, so it decodes to exactly the characters the parse read
 * (U+FFFD for malformed UTF-8 included), which stringify writes back unescaped.
 */

/** A byte range [start, end) of the body. */
export interface Span {
  start: number;
  end: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

const PAYLOAD = bytesOf('payload');
const CUSTOM_BLOCK = bytesOf('CustomBlock');

/** Number tokens are ASCII. */
const latin1 = new TextDecoder('latin1');

function bytesOf(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** The escapes JSON.stringify writes itself: " \ b f n r t. */
function isShortEscape(c: number): boolean {
  return c === QUOTE || c === BACKSLASH || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74;
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isWhitespace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * For each item of a JSON array of messages, the span of its `payload.CustomBlock` value when that
 * text is canonical (above), else null (no such field in that exact case, or given twice, or not canonical).
 * `body` must be JSON that JSON.parse accepted, and no deeper than the depth limit (the scan recurses).
 */
export function canonicalCustomBlocks(body: Uint8Array): Array<Span | null> {
  return new Scanner(body).batch();
}

class Scanner {
  private i = 0;
  /**
   * Key spans of the objects open in the block being checked, innermost last (start, end, start, end, …),
   * and per open object or array where its keys begin (-1 for an array). Fixed sizes: a block that needs
   * more is simply not reused.
   */
  private readonly keys = new Int32Array(4096);
  private readonly open = new Int32Array(128);

  constructor(private readonly b: Uint8Array) {}

  batch(): Array<Span | null> {
    const out: Array<Span | null> = [];
    this.ws();
    if (this.b[this.i] !== OPEN_BRACKET) return out;
    this.i++;
    this.ws();
    if (this.b[this.i] === CLOSE_BRACKET) return out;
    for (;;) {
      this.ws();
      out.push(this.b[this.i] === OPEN_BRACE ? this.fieldOf(PAYLOAD, (start) => this.fieldOf(CUSTOM_BLOCK, (at) => this.canonicalAt(at), start), this.i) : this.skipValue());
      this.ws();
      if (this.b[this.i++] !== COMMA) return out;
    }
  }

  /**
   * In the object at `start`: what `inner` finds in the value of the key `name` (exact case), or null
   * when the key is absent, given twice or its value is no object. Leaves the position after the object.
   */
  private fieldOf(name: Uint8Array, inner: (at: number) => Span | null, start: number): Span | null {
    const b = this.b;
    this.i = start;
    if (b[this.i] !== OPEN_BRACE) {
      this.skipValue();
      return null;
    }
    this.i++;
    let found: Span | null = null;
    let seen = 0;
    this.ws();
    if (b[this.i] === CLOSE_BRACE) {
      this.i++;
      return null;
    }
    for (;;) {
      this.ws();
      const keyStart = this.i + 1;
      this.skipString();
      const keyEnd = this.i - 1;
      this.ws();
      this.i++; // the colon
      this.ws();
      if (this.equals(keyStart, keyEnd, name)) {
        seen++;
        found = inner(this.i);
      } else this.skipValue();
      this.ws();
      if (b[this.i++] === CLOSE_BRACE) return seen === 1 ? found : null;
    }
  }

  /** The span of the value at `at` if it is canonical; the position is left after the value either way. */
  private canonicalAt(at: number): Span | null {
    const end = this.canonical(at);
    if (end >= 0) {
      this.i = end;
      return { start: at, end };
    }
    this.i = at;
    this.skipValue();
    return null;
  }

  /**
   * Where the canonical value at `p` ends, or -1 when it is not canonical. One loop, no recursion: the
   * parse has checked the grammar, so this only looks at what stringify could write differently. A
   * string followed by a colon is a key (in valid JSON nothing else is).
   */
  private canonical(p: number): number {
    const b = this.b;
    const n = b.length;
    const keys = this.keys;
    const open = this.open;
    let nKeys = 0;
    let depth = 0;
    while (p < n) {
      const c = b[p]!;
      if (c === QUOTE) {
        const start = p;
        for (p++; ; p++) {
          const s = b[p]!;
          if (s === QUOTE) break;
          if (s === BACKSLASH) {
            if (!isShortEscape(b[p + 1]!)) return -1;
            p++;
          }
        }
        p++;
        if (b[p] === COLON) {
          if (isDigit(b[start + 1]!) || nKeys + 2 > keys.length) return -1;
          const len = p - start;
          const second = b[start + 1];
          for (let k = open[depth - 1]!; k < nKeys; k += 2) {
            const at = keys[k]!;
            if (keys[k + 1]! - at === len && b[at + 1] === second && this.sameBytes(at, at + len, start, p)) return -1;
          }
          keys[nKeys++] = start;
          keys[nKeys++] = p;
          p++;
        }
      } else if (c === COMMA) p++;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (depth === open.length) return -1;
        open[depth++] = c === OPEN_BRACE ? nKeys : -1;
        p++;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        const base = open[--depth]!;
        if (base >= 0) nKeys = base;
        p++;
        if (depth === 0) return p;
      } else if (c === 0x74 || c === 0x6e) p += 4; // true, null (the parse accepted the text)
      else if (c === 0x66) p += 5; // false
      else if (c === 0x2d || isDigit(c)) {
        p = this.canonicalNumber(p);
        if (p < 0) return -1;
      } else return -1; // whitespace
      if (depth === 0) return p;
    }
    return -1;
  }

  private canonicalNumber(p: number): number {
    const b = this.b;
    const start = p;
    let plainDigits = 0;
    let plain = true; // an integer: '-'? digits
    if (b[p] === 0x2d) p++;
    for (; p < b.length; p++) {
      const c = b[p]!;
      if (isDigit(c)) plainDigits++;
      else if (c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d) plain = false;
      else break;
    }
    // Common case without building a string: an integer of up to 15 digits, no leading zero, not -0.
    const first = b[b[start] === 0x2d ? start + 1 : start];
    if (plain && plainDigits <= 15 && (first !== 0x30 || (plainDigits === 1 && b[start] !== 0x2d))) return p;
    const text = latin1.decode(b.subarray(start, p));
    return String(Number(text)) === text ? p : -1;
  }

  private sameBytes(s1: number, e1: number, s2: number, e2: number): boolean {
    if (e1 - s1 !== e2 - s2) return false;
    const b = this.b;
    for (let k = 0; k < e1 - s1; k++) if (b[s1 + k] !== b[s2 + k]) return false;
    return true;
  }

  private equals(start: number, end: number, name: Uint8Array): boolean {
    if (end - start !== name.length) return false;
    for (let k = 0; k < name.length; k++) if (this.b[start + k] !== name[k]) return false;
    return true;
  }

  private ws(): void {
    while (isWhitespace(this.b[this.i]!)) this.i++;
  }

  private skipString(): void {
    const b = this.b;
    for (this.i++; ; this.i++) {
      const c = b[this.i]!;
      if (c === QUOTE) break;
      if (c === BACKSLASH) this.i++;
    }
    this.i++;
  }

  /** Past the value at the position (valid JSON), without looking inside. Returns null for `batch`. */
  private skipValue(): null {
    const b = this.b;
    const c = b[this.i]!;
    if (c === QUOTE) {
      this.skipString();
      return null;
    }
    if ((c | 0x20) !== OPEN_BRACE) {
      // A literal or a number: up to the next delimiter.
      while (this.i < b.length && !isDelimiter(b[this.i]!)) this.i++;
      return null;
    }
    let depth = 0;
    for (; this.i < b.length; this.i++) {
      const d = b[this.i]!;
      if (d === QUOTE) {
        this.skipString();
        this.i--;
        continue;
      }
      const folded = d | 0x20;
      if (folded === OPEN_BRACE) depth++;
      else if (folded === CLOSE_BRACE && --depth === 0) {
        this.i++;
        return null;
      }
    }
    return null;
  }
}

const isDelimiter = (c: number): boolean => c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || isWhitespace(c);

/**
 * JSON.stringify(message) for a `{ payload: {…} }` message whose payload.CustomBlock is written as
 * `customBlock`, text the caller found canonical for that very value (canonicalCustomBlocks). The
 * payload's other fields are serialised as JSON.stringify would, in the same order.
 */
export function stringifyWithCustomBlock(message: { payload: Record<string, unknown> }, customBlock: string): string {
  let out = '{"payload":{';
  let first = true;
  for (const key of Object.keys(message.payload)) {
    // JSON.stringify's type hides that it answers undefined for undefined (and for functions).
    const value: string | undefined = key === 'CustomBlock' ? customBlock : JSON.stringify(message.payload[key]);
    if (value === undefined) continue; // as JSON.stringify leaves out an undefined field
    out += `${first ? '' : ','}${JSON.stringify(key)}:${value}`;
    first = false;
  }
  return `${out}}}`;
}
