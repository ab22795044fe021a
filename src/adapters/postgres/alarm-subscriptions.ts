import type pg from 'pg';
import { openPool } from './pool.js';
import type { AlarmMemory, AlarmSubscription, AlarmSubscriptionStore, AnnouncedAlarm } from '../../ports/alarms.js';
import { fromAnnouncedColumn, fromSubscriptionRow, thresholdsColumn, type SubscriptionRow } from '../alarm-row.js';
import { migrateStore } from './roles.js';
import { LOCKS } from './schema.js';

/** Alarm subscriptions on the cluster's PostgreSQL (one connection of their own: they are read rarely). */
export class PgAlarmSubscriptions implements AlarmSubscriptionStore, AlarmMemory {
  private constructor(private readonly pool: pg.Pool) {}

  /** `migrationUrl`: the table's owner, which applies the schema (roles.ts); absent, `url`'s role does. */
  static async open(url: string, migrationUrl?: string): Promise<PgAlarmSubscriptions> {
    const pool = openPool({ url, max: 1, applicationName: 'opendip-alarms' });
    try {
      await migrateStore(
        pool,
        migrationUrl,
        'opendip-alarms-owner',
        LOCKS.alarmSchema,
        `CREATE TABLE IF NOT EXISTS alarm_subscriptions (
           id text PRIMARY KEY, owner text NOT NULL, rules text NOT NULL, email text, webhook_url text, created_at bigint NOT NULL);
         -- Added 2026-12-05: rows written before have none (the operator's thresholds apply).
         ALTER TABLE alarm_subscriptions ADD COLUMN IF NOT EXISTS thresholds text;
         -- Added 2026-12-06: each node's alarms announced, so its restart neither announces them again nor forgets them.
         CREATE TABLE IF NOT EXISTS alarm_announced (node text PRIMARY KEY, announced text NOT NULL)`,
      );
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PgAlarmSubscriptions(pool);
  }

  async list(owner?: string): Promise<AlarmSubscription[]> {
    const { rows } = owner === undefined
      ? await this.pool.query<SubscriptionRow>('SELECT * FROM alarm_subscriptions ORDER BY created_at, id')
      : await this.pool.query<SubscriptionRow>('SELECT * FROM alarm_subscriptions WHERE owner = $1 ORDER BY created_at, id', [owner]);
    return rows.map(fromSubscriptionRow);
  }

  async put(s: AlarmSubscription): Promise<void> {
    await this.pool.query(
      `INSERT INTO alarm_subscriptions (id, owner, rules, email, webhook_url, created_at, thresholds) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (id) DO UPDATE SET rules = EXCLUDED.rules, email = EXCLUDED.email, webhook_url = EXCLUDED.webhook_url, thresholds = EXCLUDED.thresholds`,
      [s.id, s.owner, JSON.stringify(s.rules), s.email, s.webhookUrl, s.createdAt, thresholdsColumn(s)],
    );
  }

  async remove(owner: string, id: string): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM alarm_subscriptions WHERE owner = $1 AND id = $2', [owner, id])).rowCount ?? 0) > 0;
  }

  async recall(node: string): Promise<AnnouncedAlarm[]> {
    const { rows } = await this.pool.query<{ announced: string }>('SELECT announced FROM alarm_announced WHERE node = $1', [node]);
    return rows[0] ? fromAnnouncedColumn(rows[0].announced) : [];
  }

  async remember(node: string, announced: AnnouncedAlarm[]): Promise<void> {
    await this.pool.query('INSERT INTO alarm_announced (node, announced) VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET announced = EXCLUDED.announced', [node, JSON.stringify(announced)]);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
