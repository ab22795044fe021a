/**
 * What the start's `PRAGMA quick_check` of activity.db costs (src/adapters/sqlite/activity-log.ts, quickCheck):
 * a file of activity-like rows (~1.6 KB each, the log's primary key and two indexes), checkpointed, then
 * checked three times, each on a new connection. `npx tsx bench/activity-quick-check.ts [rows]`.
 */
import Database from 'better-sqlite3';
import { rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const rows = Number(process.argv[2] ?? 250_000);
const file = join(tmpdir(), 'opendip-quick-check.db');
rmSync(file, { force: true });
const db = new Database(file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = OFF');
db.exec(`CREATE TABLE activity_log (chain TEXT, seq INTEGER, at INTEGER, request_id TEXT, url TEXT, body TEXT, hash TEXT, PRIMARY KEY (chain, seq)) WITHOUT ROWID;
  CREATE INDEX a_at ON activity_log (at, chain, seq); CREATE INDEX a_r ON activity_log (request_id)`);
const insert = db.prepare('INSERT INTO activity_log VALUES (?, ?, ?, ?, ?, ?, ?)');
const body = 'y'.repeat(1500);
db.transaction(() => {
  for (let i = 0; i < rows; i++) insert.run('c', i, 1e12 + i, `r${i}`, '/dip-channel/x', body, 'h'.repeat(64));
})();
db.pragma('wal_checkpoint(TRUNCATE)');
db.close();
const mib = statSync(file).size / 1048576;
for (let k = 0; k < 3; k++) {
  const d = new Database(file);
  const t = process.hrtime.bigint();
  const r = d.prepare('PRAGMA quick_check(5)').all();
  console.log(`${mib.toFixed(0)} MiB: quick_check ${(Number(process.hrtime.bigint() - t) / 1e6).toFixed(0)} ms`, JSON.stringify(r));
  d.close();
}
rmSync(file, { force: true });
