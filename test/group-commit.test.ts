import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../src/adapters/sqlite/group-commit.js';

function table() {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (v INTEGER UNIQUE)');
  return { db, insert: db.prepare('INSERT INTO t (v) VALUES (?)') };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('group commit', () => {
  it('commits every write of a turn together, settles nothing before the disk sync reports, and isolates a failing write', async () => {
    const { db, insert } = table();
    const syncs: Array<(e: Error | null) => void> = [];
    const gc = new GroupCommit(db, { rolledBack() {}, settled() {} }, (done) => syncs.push(done));
    const settled: string[] = [];
    const a = gc.submit(() => insert.run(1)).then(() => settled.push('a'));
    const b = gc.submit(() => insert.run(1)).catch(() => settled.push('b refused')); // duplicate: its savepoint rolls back
    const c = gc.submit(() => insert.run(2)).then(() => settled.push('c'));
    await tick();
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 2 }); // committed, one transaction
    expect(syncs).toHaveLength(1);
    await tick();
    expect(settled).toEqual([]); // not acknowledged before the sync
    syncs[0]!(null);
    await Promise.all([a, b, c]);
    expect(settled.sort()).toEqual(['a', 'b refused', 'c']);
  });

  it('stops taking writes after a failed sync (fail-stop)', async () => {
    const { db, insert } = table();
    const gc = new GroupCommit(db, { rolledBack() {}, settled() {} }, (done) => done(new Error('EIO')));
    await expect(gc.submit(() => insert.run(1))).rejects.toThrow('EIO');
    await expect(gc.submit(() => insert.run(2))).rejects.toThrow(/stopped taking writes after a failed disk sync: EIO/);
  });
});
