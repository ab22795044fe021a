/**
 * Lone UTF-16 surrogates. JSON's grammar lets a string hold any `\uXXXX` escape, `\ud800` alone included,
 * and JSON.parse takes one as the lone code unit; but such a string is no Unicode text (RFC 8259 8.2:
 * "the behavior of software that receives JSON texts containing such values is unpredictable"), and
 * strict readers refuse it (serde_json: "lone leading surrogate in hex escape"). Accepted and passed on,
 * the message would be refused by its recipient's reader: a 201 turned into a dead letter. Refused at
 * ingest, as a byte order mark and bytes that are not UTF-8 are.
 *
 * Cheap where it runs on every batch: a valid UTF-8 body (the listener refuses any other) holds a surrogate
 * code unit only as an escape, so the raw bytes are searched for `\u` followed by D and 8–F (native
 * Buffer.indexOf) and only a body holding one has its parsed strings looked at (firstLoneSurrogate).
 */

const ESCAPE = Buffer.from('\\u', 'latin1');

/**
 * Whether the JSON bytes [start, end) hold a `\u` escape of a surrogate (`\uD800`–`\uDFFF`, either case):
 * a lone one may then be among them. An escaped backslash before `ud800` matches too, which only costs a look.
 */
export function hasSurrogateEscape(bytes: Buffer, start = 0, end = bytes.length): boolean {
  for (let i = bytes.indexOf(ESCAPE, start); i >= 0 && i + 3 < end; i = bytes.indexOf(ESCAPE, i + 2)) {
    const first = bytes[i + 2]! | 0x20;
    const second = bytes[i + 3]! | 0x20;
    // d, then 8, 9 or a–f (a digit folds onto itself, an upper-case letter onto its lower case).
    if (first === 0x64 && (second === 0x38 || second === 0x39 || (second >= 0x61 && second <= 0x66))) return true;
  }
  return false;
}

/** A surrogate code unit that is not half of a pair (with `u`, a pair is one code point, never Cs). */
const LONE = /\p{Cs}/u;

/**
 * The path (`payload.CommonBlock.S1.subText`, `B[2]`; a member name that holds one is shown quoted and
 * escaped) of the first string, member name or value, of a parsed JSON value that holds a lone surrogate;
 * null when none does. Paths are built only for a value found guilty (an emoji's escaped pair in every
 * message must stay cheap). Recursion is bounded by the depth check that ran before the parse.
 */
export function firstLoneSurrogate(value: unknown): string | null {
  return holdsLoneSurrogate(value) ? pathTo(value, '') : null;
}

function holdsLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE.test(value);
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (holdsLoneSurrogate(value[i])) return true;
    return false;
  }
  for (const key in value) if (LONE.test(key) || holdsLoneSurrogate((value as Record<string, unknown>)[key])) return true;
  return false;
}

/** Where in `value`, which holds one, the first lone surrogate is. */
function pathTo(value: unknown, path: string): string {
  if (Array.isArray(value)) {
    const i = value.findIndex(holdsLoneSurrogate);
    return pathTo(value[i], `${path}[${i}]`);
  }
  if (typeof value !== 'object' || value === null) return path;
  for (const key in value) {
    if (LONE.test(key)) return path === '' ? JSON.stringify(key) : `${path}.${JSON.stringify(key)}`;
    const member = (value as Record<string, unknown>)[key];
    if (holdsLoneSurrogate(member)) return pathTo(member, path === '' ? key : `${path}.${key}`);
  }
  return path;
}

/** The answer to a lone surrogate found at `path` (firstLoneSurrogate's finding). */
export function loneSurrogateHelp(path: string): string {
  return `${path === '' ? 'the value' : path} holds a lone UTF-16 surrogate (a \\uD800–\\uDFFF escape that is not half of a pair): it is not Unicode text, and strict JSON readers refuse it (RFC 8259 8.2); send the character itself or its escaped surrogate pair`;
}
