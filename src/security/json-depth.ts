/**
 * How deeply a JSON text nests arrays and objects, found with one pass over the raw bytes before
 * anything parses it. JSON.parse itself copes with any depth, but everything that walks the result
 * recursively afterwards (JSON.stringify, validators, loggers) overflows the stack somewhere past a few
 * thousand levels. No DIP message comes near the limit (they nest about ten levels).
 *
 * Works on UTF-8 bytes: multi-byte sequences never contain ASCII bytes, so brackets and quotes are
 * recognised exactly. Malformed JSON is left to the parser; this only counts.
 *
 * It runs on every JSON body (a batch of 100 IF-021 is ~450 kB), so the loop is shaped for speed:
 * strings (most of the bytes) are skipped by an inner loop that looks only for the closing quote and
 * backslashes, and outside strings one OR folds `[`/`{` (0x5b/0x7b) and `]`/`}` (0x5d/0x7d) together.
 */
export function exceedsJsonDepth(body: Uint8Array, maxDepth: number): boolean {
  if (body.length <= maxDepth) return false; // too short to open maxDepth + 1 brackets
  return walk(body, 0, maxDepth, UNCOUNTED, null) === TOO_DEEP;
}

/**
 * How many members and values a JSON body may spell out, counted by the same pass as the depth, before
 * anything parses it. JSON.parse, the duplicate-name and key-case checks and the validators all cost far
 * more per member of one huge object (V8 keeps it as a dictionary; a validator reports every extra field)
 * than the bytes suggest: 200,000 members in 2.2 MB held the process for seconds. No message of the
 * catalogue comes near either cap (test/security-json-depth.test.ts derives its largest from the schemas).
 */
export interface JsonCounts {
  /** Members one object may hold. */
  maxObjectMembers: number;
  /**
   * Values one body holds (one message, for a batch): object members and array elements (every element
   * after an array's first, which is what a comma outside strings separates).
   */
  maxValues: number;
}

/** No cap on members or values: the depth alone. */
export const UNCOUNTED: JsonCounts = { maxObjectMembers: Infinity, maxValues: Infinity };

/**
 * Why the body is refused unparsed (too deep, an object with too many members, too many values), in
 * the words of the answer; null when it is within every limit. Malformed JSON is left to the parser.
 */
export function jsonBodyExcess(body: Uint8Array, maxDepth: number, counts: JsonCounts): string | null {
  return excessHelp(walk(body, 0, maxDepth, counts, null), maxDepth, counts, '');
}

/** Where one item of a top-level JSON array lies in the bytes: [start, end). */
export interface ItemSpan {
  start: number;
  end: number;
  /** The object members its text spells out (colons outside strings), duplicate names included: see memberCount. */
  members: number;
  /**
   * Whether it holds a number of more than 15 digits or with an exponent: only such a number can be one
   * a double does not hold exactly (src/security/json-numbers.ts reads the item again to decide).
   */
  longNumber: boolean;
}

/**
 * exceedsJsonDepth's pass, which also finds where each item of a top-level array lies: the bytes
 * between the opening `[`, the commas at depth 1 outside strings and the closing `]`. `items` is null
 * when the body is not framed as `ws [ … ] ws` with at least one item (an object, a scalar, `[]`,
 * anything after the closing bracket, an unterminated string): the caller then parses the whole body,
 * as before. An item's span is only where its text lies, not a claim that it is valid: each is parsed
 * on its own, and one that fails sends the caller back to parsing the whole.
 * `excess` (jsonBodyExcess's answer, the values counted per item when the body is a framed array) is
 * set when the body is refused unparsed; `tooDeep` is then whether the depth is why.
 *
 * Why: a batch of 100 IF-021 is ~450 kB, and decoding it as one string puts that string in V8's large
 * object space: on this project's 2-core VM, 1.4 ms of user and 1.3 ms of system time (page faults) per
 * batch, against 0.1 ms for the same bytes decoded item by item (`npx tsx bench/hotpath.ts items`).
 */
export function scanJsonBatch(body: Uint8Array, maxDepth: number, counts: JsonCounts = UNCOUNTED): { tooDeep: boolean; excess: string | null; items: ItemSpan[] | null } {
  const n = body.length;
  let i = 0;
  while (i < n && isJsonSpace(body[i]!)) i++;
  // Not an array: the whole body is counted as one.
  if (i >= n || body[i] !== 0x5b) return whole(walk(body, 0, maxDepth, counts, null), maxDepth, counts, '');
  const items: ItemSpan[] = [];
  const close = walk(body, i, maxDepth, counts, items);
  if (close < 0) return whole(close, maxDepth, counts, `item ${items.length}: `);
  // Never back to depth 0 (unterminated): the walk has seen every byte, within every limit.
  if (close === n) return { tooDeep: false, excess: null, items: null };
  // The top-level array's end: a `]` followed by whitespace only (a `}` here is malformed).
  let framed = body[close] === 0x5d;
  let after = close + 1;
  while (after < n && isJsonSpace(body[after]!)) after++;
  if (after < n) framed = false;
  // Anything after the close is counted on from depth 0, where the walk stopped: no byte is read twice.
  if (!framed) return whole(walk(body, close + 1, maxDepth, counts, null), maxDepth, counts, '');
  // `[ ]`: no item, and the single empty span is not one.
  if (items.length === 1 && isBlank(body, items[0]!)) return { tooDeep: false, excess: null, items: null };
  return { tooDeep: false, excess: null, items };
}

function whole(result: number, maxDepth: number, counts: JsonCounts, where: string): { tooDeep: boolean; excess: string | null; items: null } {
  return { tooDeep: result === TOO_DEEP, excess: excessHelp(result, maxDepth, counts, where), items: null };
}

function excessHelp(result: number, maxDepth: number, counts: JsonCounts, where: string): string | null {
  if (result === TOO_DEEP) return jsonTooDeep(maxDepth);
  if (result === TOO_MANY_MEMBERS) return `${where}an object of the JSON body holds more than the limit of ${counts.maxObjectMembers} members`;
  if (result === TOO_MANY_VALUES) return `${where}the JSON ${where === '' ? 'body' : 'message'} holds more than the limit of ${counts.maxValues} values (object members and array elements)`;
  return null;
}

const TOO_DEEP = -1;
const TOO_MANY_MEMBERS = -2;
const TOO_MANY_VALUES = -3;
const OBJECT = 1;

/**
 * The one pass both share, from `from` at depth 0. Without `items` it counts to the end of the body;
 * with them (`from` at a top-level `[`) it also records the spans between the depth-1 commas and stops at
 * the bracket that brings the depth back to 0, returning its index. TOO_DEEP as soon as the depth passes
 * maxDepth, TOO_MANY_MEMBERS / TOO_MANY_VALUES as soon as a count passes its cap (values counted per
 * item with `items`, else for the whole body); the body's length when it ends first.
 * Only brackets, colons and commas are counted, and only per depth (which the depth limit keeps small):
 * the strings and numbers that are most of the bytes are skipped as before.
 */
function walk(body: Uint8Array, from: number, maxDepth: number, counts: JsonCounts, items: ItemSpan[] | null): number {
  const n = body.length;
  const { maxObjectMembers, maxValues } = counts;
  const counted = maxObjectMembers !== Infinity || maxValues !== Infinity;
  // Per open container: whether it is an object, and the members it has given so far.
  const kind = counted ? new Uint8Array(maxDepth + 1) : null;
  const memberAt = counted ? new Uint32Array(maxDepth + 1) : null;
  let depth = 0;
  let start = from + 1;
  let members = 0;
  let values = 0;
  let longNumber = false;
  for (let i = from; i < n; i++) {
    const c = body[i]!;
    if (c === 0x22) {
      i = stringEnd(body, i, n);
      continue;
    }
    if (c === 0x2c) {
      if (depth === 1 && items !== null) {
        items.push({ start, end: i, members, longNumber });
        start = i + 1;
        members = 0;
        values = 0;
        longNumber = false;
      } else if (kind !== null && kind[depth] !== OBJECT && ++values > maxValues) return TOO_MANY_VALUES;
      continue;
    }
    if (c === 0x3a) {
      members++;
      if (memberAt !== null) {
        if (++memberAt[depth]! > maxObjectMembers) return TOO_MANY_MEMBERS;
        if (++values > maxValues) return TOO_MANY_VALUES;
      }
      continue;
    }
    const folded = c | 0x20; // only 0x5b and 0x7b fold to 0x7b, only 0x5d and 0x7d to 0x7d
    if (folded === 0x7b) {
      if (++depth > maxDepth) return TOO_DEEP;
      if (kind !== null) {
        kind[depth] = c === 0x7b ? OBJECT : 0;
        memberAt![depth] = 0;
      }
    } else if (folded === 0x7d) {
      if (--depth === 0 && items !== null) {
        items.push({ start, end: i, members, longNumber });
        return i;
      }
    } else if (c - 0x30 < 10 && c >= 0x2d) {
      const e = numberEnd(body, i, n);
      if (e < 0) longNumber = true;
      i = Math.abs(e) - 1;
    }
  }
  return n;
}

/** Where the string opened by the quote at `i` closes (its closing quote), stepping over each escaped byte; `end` when it does not. */
export function stringEnd(bytes: Uint8Array, i: number, end: number): number {
  for (i++; i < end; i++) {
    const s = bytes[i]!;
    if (s === 0x22) break;
    if (s === 0x5c) i++;
  }
  return i;
}

/**
 * Where the number starting at `i` ends (outside strings only numbers hold `-` or digits; `.` and `/`
 * never start a token of valid JSON, and are merely stepped over), read over [0-9.eE+-] counting its
 * digits; negated when it has more than 15 or an exponent. 15 digits or fewer without an exponent always
 * survive a double (DBL_DIG); any other number is worth the exact check (json-numbers.ts), which an
 * exponent or zeros padding the digits rarely fail. One value, no object: this runs for every number.
 */
export function numberEnd(bytes: Uint8Array, i: number, end: number): number {
  let digits = bytes[i]! >= 0x30 ? 1 : 0;
  let j = i + 1;
  for (; j < end; j++) {
    const d = bytes[j]!;
    if (d - 0x30 >>> 0 < 10) digits++;
    else if ((d | 0x20) === 0x65) digits = 16;
    else if (d !== 0x2e && d !== 0x2d && d !== 0x2b) break;
  }
  return digits > 15 ? -j : j;
}

/** JSON's whitespace: space, tab, line feed, carriage return (what JSON.parse skips). */
function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isBlank(body: Uint8Array, span: ItemSpan): boolean {
  for (let i = span.start; i < span.end; i++) if (!isJsonSpace(body[i]!)) return false;
  return true;
}

/** The answer to a body nested deeper than the limit (the listener's and the ingest pipeline's). */
export function jsonTooDeep(maxDepth: number): string {
  return `the JSON body nests arrays and objects deeper than the limit of ${maxDepth} levels`;
}

/**
 * How many object members a parsed JSON value holds, at every level. JSON.parse keeps only the last of
 * members that share a name (`{"a":1,"a":2}` is `{a:2}`), so fewer members than the text spells out
 * (ItemSpan.members) means a name was given twice in the same case: the value read is then not plainly
 * the value sent and signed (another parser may keep the first), so such a message is refused
 * (RFC 8259 §4: names SHOULD be unique). Names differing only in case are the key-case check's
 * (src/catalogue/key-case.ts). Recursion is bounded by the depth check that ran before the parse.
 */
export function memberCount(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let n = 0;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) n += memberCount(value[i]);
    return n;
  }
  for (const key in value) n += 1 + memberCount((value as Record<string, unknown>)[key]);
  return n;
}

/**
 * Reads a JSON text that JSON.parse accepted token by token, keeping the path of the value at hand
 * (`payload.CommonBlock.S1`, `payload.B[2]`), and answers the first finding of `visit`: `name` for each
 * member name, with the names its object gave before it; `number` for each number token, with its path.
 * For answers only, once a cheaper check has found something: it decodes and walks the whole text.
 */
export function findInJson<T>(
  text: string,
  visit: { name?(path: string, name: string, before: ReadonlySet<string>): T | null; number?(path: string, token: string): T | null },
): T | null {
  type Frame = { names: Set<string> | null; path: string; index: number; expectName: boolean; last: string };
  const stack: Frame[] = [];
  const childPath = (f: Frame | undefined): string => (f === undefined ? '' : f.names === null ? `${f.path}[${f.index}]` : f.path === '' ? f.last : `${f.path}.${f.last}`);
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const top = stack.at(-1);
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (top?.names && top.expectName) {
        const name = JSON.parse(text.slice(i, j + 1)) as string;
        const found = visit.name?.(top.path, name, top.names) ?? null;
        if (found !== null) return found;
        top.names.add(name);
        top.last = name;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      stack.push({ names: c === '{' ? new Set() : null, path: childPath(top), index: 0, expectName: true, last: '' });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ':' && top) {
      top.expectName = false;
    } else if (c === ',' && top) {
      top.expectName = true;
      top.index++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[0-9.e+-]/i.test(text[j]!)) j++;
      const found = visit.number?.(childPath(top), text.slice(i, j)) ?? null;
      if (found !== null) return found;
      i = j - 1;
    }
  }
  return null;
}

/**
 * Where a JSON text first gives a member name twice in one object, as a path (`payload.CommonBlock.S1`)
 * and the name; null when it never does. For the answer only, once memberCount has found one: it assumes
 * a text JSON.parse accepted.
 */
export function firstDuplicateName(text: string): { path: string; name: string } | null {
  return findInJson(text, { name: (path, name, before) => (before.has(name) ? { path, name } : null) });
}

/** The answer to a member name given twice (firstDuplicateName's finding). */
export function nameGivenTwice(d: { path: string; name: string }): string {
  return `${d.path === '' ? '' : `${d.path}.`}${d.name} is given twice in one object; a member name may appear once (RFC 8259 §4)`;
}
