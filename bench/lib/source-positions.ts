/**
 * Maps positions in code tsx executed back to the TypeScript source, so a CPU profile of a DIP run under
 * tsx names real lines (tsx hands V8 whitespace-minified code, so every frame of a file sits on a few
 * long lines). tsx keeps each transformed file with its source map in <tmpdir>/tsx-<uid>/; the entry
 * that matches the run is the one whose code has the profile's named functions where the profile says.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CacheEntry {
  code: string;
  map: { sources: string[]; mappings: string };
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Per generated line: [generated column, original line (0-based)] pairs, ascending by column. */
function decodeMappings(mappings: string): Array<Array<[number, number]>> {
  const lines: Array<Array<[number, number]>> = [];
  let srcLine = 0;
  for (const lineText of mappings.split(';')) {
    const segs: Array<[number, number]> = [];
    let genCol = 0;
    for (const seg of lineText.split(',')) {
      if (!seg) continue;
      const values: number[] = [];
      let value = 0;
      let shift = 0;
      for (const ch of seg) {
        const digit = B64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          values.push(value & 1 ? -(value >> 1) : value >> 1);
          value = 0;
          shift = 0;
        }
      }
      genCol += values[0] ?? 0;
      if (values.length >= 4) {
        srcLine += values[2] ?? 0;
        segs.push([genCol, srcLine]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

export interface NamedPosition {
  functionName: string;
  /** 0-based, as in a V8 call frame. */
  lineNumber: number;
  columnNumber: number;
}

export interface SourceFile {
  /** Original 1-based line of a 0-based generated position. */
  originalLine(line: number, column: number): number | undefined;
  /** The method or function whose body holds an original 1-based line (by scanning the source upwards). */
  enclosingName(line: number): string | undefined;
}

const cacheDir = (): string => join(tmpdir(), `tsx-${userInfo().uid}`);
let entries: Array<{ file: string; mtime: number }> | undefined;

/**
 * The source map tsx used for `url` in this run: among the cached transforms of that file, the newest
 * whose code has each of `named` functions' names at the positions the profile gives.
 */
export function sourceFor(url: string, named: NamedPosition[]): SourceFile | undefined {
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch {
    return undefined;
  }
  try {
    entries ??= readdirSync(cacheDir()).map((f) => ({ file: join(cacheDir(), f), mtime: statSync(join(cacheDir(), f)).mtimeMs })).sort((a, b) => b.mtime - a.mtime);
  } catch {
    return undefined;
  }
  const needle = JSON.stringify(path);
  let chosen: CacheEntry | undefined;
  let bestScore = 0;
  for (const { file } of entries) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (!text.includes(needle)) continue;
    let entry: CacheEntry;
    try {
      entry = JSON.parse(text) as CacheEntry;
    } catch {
      continue;
    }
    if (!entry.map?.sources?.includes(path)) continue;
    const codeLines = entry.code.split('\n');
    // V8 puts a method at its parameter list, just after the name (a constructor under its class's name: no match).
    const score = named.filter((n) => {
      const at = codeLines[n.lineNumber]?.slice(Math.max(0, n.columnNumber - n.functionName.length - 24), n.columnNumber + 1) ?? '';
      return at.includes(n.functionName);
    }).length;
    if (score > bestScore) {
      bestScore = score;
      chosen = entry;
    }
  }
  if (!chosen || bestScore * 2 < named.length) return undefined;
  {
    const entry = chosen;
    const mapped = decodeMappings(entry.map.mappings);
    let original: string[] = [];
    try {
      original = readFileSync(path, 'utf8').split('\n');
    } catch {
      // The source moved on: lines still map, names cannot be read.
    }
    return {
      originalLine(line, column) {
        const segs = mapped[line];
        if (!segs || segs.length === 0) return undefined;
        let lo = 0;
        let hi = segs.length - 1;
        let best = -1;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          if (segs[mid]![0] <= column) {
            best = mid;
            lo = mid + 1;
          } else hi = mid - 1;
        }
        return best >= 0 ? segs[best]![1] + 1 : undefined;
      },
      enclosingName(line) {
        const def = /^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:function\s*(?:\*\s*)?(\w+)|(?:(?:private|public|protected|static|readonly|override|async|get|set)\s+)*(\w+)\s*(?:<[^>]*>\s*)?\(.*\)\s*(?::[^={]*)?\{\s*$|(?:const|let)\s+(\w+)\s*=\s*(?:async\s*)?(?:\(.*\)|\w+)\s*(?::[^=]*)?=>)/;
        const skip = new Set(['if', 'for', 'while', 'switch', 'catch', 'return', 'function', 'constructor']);
        // Walk upwards keeping count of braces: a definition counts only if its block is still open here.
        let depth = 0;
        for (let i = Math.min(line, original.length) - 1; i >= 0; i--) {
          const text = (original[i] ?? '').replace(/(['"`])(?:\\.|(?!\1).)*\1/g, '').replace(/\/\/.*$/, '');
          for (let k = text.length - 1; k >= 0; k--) {
            if (text[k] === '}') depth--;
            else if (text[k] === '{') depth++;
          }
          if (depth > 0) {
            const m = def.exec(original[i] ?? '');
            const name = m?.[1] ?? m?.[2] ?? m?.[3];
            if (name && !skip.has(name)) return name;
            depth = 0; // an enclosing block that is not a named function: look further out
          }
        }
        return undefined;
      },
    };
  }
}
