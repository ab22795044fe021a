/**
 * A digest of everything a DIP has stored: every row of every table of its SQLite database (less the
 * ones only background work writes) and every file of its data directory (PKI, revocation list,
 * keys). Equal digests before and after a refused request mean it stored nothing, changed nothing.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * Not what a request stores: written by the DIP's own timers (delivery is stopped while fuzzing), or
 * the append-only record of every act, refused ones included (a refusal is journalled by design).
 */
const BACKGROUND_TABLES = new Set(['health_probe', 'delivery_attempts', 'operator_journal']);
/** SQLite files: the DIP's database is digested by table; the API activity log (activity.db) records every
 * request, refused ones included, by design. */
const DATABASE_FILES = /^(?:dip|activity)\.db(?:-wal|-shm|-journal)?$/;

export class StoreDigest {
  private readonly db: Database.Database;
  private readonly tables: string[];

  constructor(private readonly dataDir: string) {
    this.db = new Database(join(dataDir, 'dip.db'), { readonly: true, fileMustExist: true });
    this.tables = (this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>)
      .map((r) => r.name)
      .filter((n) => !BACKGROUND_TABLES.has(n));
  }

  /** The digest, and which table or file holds what (to say what changed). */
  take(): Map<string, string> {
    const parts = new Map<string, string>();
    for (const t of this.tables) {
      const hash = createHash('sha256');
      for (const row of this.db.prepare(`SELECT * FROM "${t}"`).raw().iterate() as Iterable<unknown[]>) {
        for (const v of row) hash.update(Buffer.isBuffer(v) ? v : String(v)).update('\u0000');
        hash.update('\n');
      }
      parts.set(`table ${t}`, hash.digest('hex'));
    }
    for (const file of this.files(this.dataDir)) parts.set(`file ${relative(this.dataDir, file)}`, createHash('sha256').update(readFileSync(file)).digest('hex'));
    return parts;
  }

  /** What differs between two digests ('' when nothing does). */
  static changed(before: Map<string, string>, after: Map<string, string>): string {
    const keys = new Set([...before.keys(), ...after.keys()]);
    return [...keys].filter((k) => before.get(k) !== after.get(k)).join(', ');
  }

  close(): void {
    this.db.close();
  }

  private files(dir: string): string[] {
    const out: string[] = [];
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) out.push(...this.files(p));
      else if (!(dir === this.dataDir && DATABASE_FILES.test(name))) out.push(p);
    }
    return out;
  }
}
