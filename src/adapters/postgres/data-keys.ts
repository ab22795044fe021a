import type { DataKeyStore } from '../../ports/data-keys.js';
import type { PgDatabase } from './database.js';

export class PgDataKeys implements DataKeyStore {
  constructor(private readonly d: PgDatabase) {}

  dataKeys(): Promise<Array<{ id: number; wrapped: Buffer }>> {
    return this.d.query<{ id: number; wrapped: Buffer }>('SELECT id, wrapped FROM data_keys ORDER BY id');
  }

  addDataKey(wrapped: Buffer): Promise<number> {
    return this.d.tx(async (c) => {
      const { rows } = await c.query<{ id: number }>('INSERT INTO data_keys (wrapped, created_at) VALUES ($1, $2) RETURNING id', [wrapped, this.d.options.clock.now()]);
      return rows[0]!.id;
    });
  }
}
