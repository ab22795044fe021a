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
  const n = body.length;
  if (n <= maxDepth) return false; // too short to open maxDepth + 1 brackets
  let depth = 0;
  for (let i = 0; i < n; i++) {
    const c = body[i]!;
    if (c === 0x22) {
      // A string: on to its closing quote, stepping over each escaped byte.
      for (i++; i < n; i++) {
        const s = body[i]!;
        if (s === 0x22) break;
        if (s === 0x5c) i++;
      }
      continue;
    }
    const folded = c | 0x20; // only 0x5b and 0x7b fold to 0x7b, only 0x5d and 0x7d to 0x7d
    if (folded === 0x7b) {
      if (++depth > maxDepth) return true;
    } else if (folded === 0x7d) depth--;
  }
  return false;
}

/** The answer to a body nested deeper than the limit (the listener's and the ingest pipeline's). */
export function jsonTooDeep(maxDepth: number): string {
  return `the JSON body nests arrays and objects deeper than the limit of ${maxDepth} levels`;
}
