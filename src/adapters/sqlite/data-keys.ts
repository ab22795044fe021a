import type { DataKeyStore } from '../../ports/data-keys.js';
import type { SqliteDatabase } from './database.js';

export class SqliteDataKeys implements DataKeyStore {
  constructor(private readonly d: SqliteDatabase) {}

  async dataKeys(): Promise<Array<{ id: number; wrapped: Buffer }>> {
    return this.d.db.prepare<[], { id: number; wrapped: Buffer }>('SELECT id, wrapped FROM data_keys ORDER BY id').all();
  }

  async addDataKey(wrapped: Buffer): Promise<number> {
    return this.d.write(() => Number(this.d.db.prepare('INSERT INTO data_keys (wrapped, created_at) VALUES (?, ?)').run(wrapped, this.d.options.clock.now()).lastInsertRowid));
  }
}
