/**
 * How deeply a JSON text nests arrays and objects, found with one pass over the raw bytes before
 * anything parses it. JSON.parse itself copes with any depth, but everything that walks the result
 * recursively afterwards (JSON.stringify, validators, loggers) overflows the stack somewhere past a few
 * thousand levels. No DIP message comes near the limit (they nest about ten levels).
 *
 * Works on UTF-8 bytes: multi-byte sequences never contain ASCII bytes, so brackets and quotes are
 * recognised exactly. Malformed JSON is left to the parser; this only counts.
 */
export function exceedsJsonDepth(body: Buffer, maxDepth: number): boolean {
  const n = body.length;
  if (n <= maxDepth) return false; // too short to open maxDepth + 1 brackets
  let depth = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = body[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
