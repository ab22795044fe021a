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
 * Not what a request stores: written by the DIP's own timers (delivery is stopped while fuzzing; the alarms
 * this node announced, by its alarm evaluation), the
 * append-only record of every act, refused ones included (a refusal is journalled by design), or the
 * sign-in attempts, whose refused ones are the lockout's count by design.
 */
const BACKGROUND_TABLES = new Set(['health_probe', 'delivery_attempts', 'operator_journal', 'portal_sign_in_attempts', 'alarm_announced']);
/** SQLite files are digested by table, not by bytes; the API activity log (activity.db) records every
 * request, refused ones included, by design. */
const SQLITE_FILE = /\.db(?:-wal|-shm|-journal)?$/;
const JOURNAL_DATABASES = new Set(['activity.db']);

export class StoreDigest {
  private readonly databases = new Map<string, Database.Database>();

  constructor(private readonly dataDir: string) {}

  /** The digest, and which table or file holds what (to say what changed). */
  take(): Map<string, string> {
    const parts = new Map<string, string>();
    for (const name of readdirSync(this.dataDir).filter((n) => n.endsWith('.db') && !JOURNAL_DATABASES.has(n)).sort()) {
      const db = this.open(name);
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as Array<{ name: string }>)
        .map((r) => r.name)
        .filter((n) => !BACKGROUND_TABLES.has(n));
      for (const t of tables) {
        const hash = createHash('sha256');
        for (const row of db.prepare(`SELECT * FROM "${t}"`).raw().iterate() as Iterable<unknown[]>) {
          for (const v of row) hash.update(Buffer.isBuffer(v) ? v : String(v)).update('\u0000');
          hash.update('\n');
        }
        parts.set(`table ${name}/${t}`, hash.digest('hex'));
      }
    }
    for (const file of this.files(this.dataDir)) parts.set(`file ${relative(this.dataDir, file)}`, createHash('sha256').update(readFileSync(file)).digest('hex'));
    return parts;
  }

  private open(name: string): Database.Database {
    let db = this.databases.get(name);
    if (!db) {
      db = new Database(join(this.dataDir, name), { readonly: true, fileMustExist: true });
      this.databases.set(name, db);
    }
    return db;
  }

  /** What differs between two digests ('' when nothing does). */
  static changed(before: Map<string, string>, after: Map<string, string>): string {
    const keys = new Set([...before.keys(), ...after.keys()]);
    return [...keys].filter((k) => before.get(k) !== after.get(k)).join(', ');
  }

  close(): void {
    for (const db of this.databases.values()) db.close();
  }

  private files(dir: string): string[] {
    const out: string[] = [];
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) out.push(...this.files(p));
      else if (!SQLITE_FILE.test(name)) out.push(p);
    }
    return out;
  }
}
