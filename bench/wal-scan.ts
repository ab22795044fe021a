/**
 * What the WAL guard's scan (src/adapters/sqlite/wal-guard.ts walLoss: the wal-index read, then every frame
 * of the WAL read and checksummed in JavaScript) costs one opener: `npx tsx bench/wal-scan.ts [--mib 64] [--runs 5]`
 *
 * Fills a scratch SQLite file's WAL to `--mib` MiB with checkpoints off (4 KiB pages, 3 KB rows), keeps the
 * writer's connection open (so its -wal and -shm stay, as beside a running writer or after a kill -9), then
 * times `walLoss` `--runs` times: wall time and this process's CPU (process.cpuUsage). The first run reads
 * the file from the page cache as a start after a crash would (just written); none drops the cache.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { walLoss } from '../src/adapters/sqlite/wal-guard.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '64' }, runs: { type: 'string', default: '5' } } });
const mib = Number(values.mib);
const runs = Number(values.runs);
const folder = mkdtempSync(join(tmpdir(), 'opendip-walscan-'));
const file = join(folder, 'dip.db');
const db = new Database(file);
db.pragma('journal_mode = WAL');
db.pragma('wal_autocheckpoint = 0');
db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB)');
const insert = db.prepare('INSERT INTO t (pad) VALUES (randomblob(3000))');
const batch = db.transaction(() => {
  for (let i = 0; i < 100; i++) insert.run();
});
while (statSync(`${file}-wal`).size < mib * 1024 * 1024) batch();
const walBytes = statSync(`${file}-wal`).size;
console.log(`WAL ${(walBytes / 1024 / 1024).toFixed(1)} MiB (${Math.floor((walBytes - 32) / (24 + 4096))} frames), node ${process.version}`);
for (let r = 1; r <= runs; r++) {
  const cpu = process.cpuUsage();
  const t = performance.now();
  const loss = walLoss(file, () => null);
  const wall = performance.now() - t;
  const used = process.cpuUsage(cpu);
  console.log(`run ${r}: ${wall.toFixed(0)} ms wall, ${((used.user + used.system) / 1000).toFixed(0)} ms CPU, loss: ${loss === null ? 'none' : loss.why}`);
}
db.close();
rmSync(folder, { recursive: true, force: true });
