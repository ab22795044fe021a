import Database from 'better-sqlite3';
import { openPrivateDatabase, realFile } from './private-file.js';
import { describeWalLoss, markBoot, systemBootId, walLoss } from './wal-guard.js';
import type { AlarmMemory, AlarmSubscription, AlarmSubscriptionStore, AnnouncedAlarm } from '../../ports/alarms.js';
import { fromAnnouncedColumn, fromSubscriptionRow, thresholdsColumn, type SubscriptionRow } from '../alarm-row.js';

/** Alarm subscriptions in a small SQLite file of their own (read once per alarm change, written by the API). */
export class SqliteAlarmSubscriptions implements AlarmSubscriptionStore, AlarmMemory {
  private readonly db: Database.Database;
  /**
   * Committed changes the WAL had lost when this process opened the file (a WAL deleted or damaged after a
   * crash), described; else null. Accepted, as activity.db's loss is, not refused as dip.db's: what it held
   * (subscriptions, the alarms announced) their owners can put again, and a refusal would stop the messages
   * for it. Made known instead: logged, journalled and a `storage` alarm (src/assemble/observability.ts).
   */
  readonly lostOnOpen: string | null;

  constructor(path: string) {
    // Checked before any connection opens it (the first rebuilds the wal-index: wal-guard.ts).
    const file = realFile(path);
    const loss = walLoss(file);
    this.lostOnOpen = loss && describeWalLoss(loss, 'accepted', 'alarms');
    markBoot(file, systemBootId);
    this.db = openPrivateDatabase(file);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS alarm_subscriptions (
      id TEXT PRIMARY KEY, owner TEXT NOT NULL, rules TEXT NOT NULL, email TEXT, webhook_url TEXT, created_at INTEGER NOT NULL, thresholds TEXT)`);
    // Added 2026-12-05: a file made before has its rows read with no thresholds (the operator's).
    if (!this.db.prepare<[], { name: string }>('PRAGMA table_info(alarm_subscriptions)').all().some((c) => c.name === 'thresholds')) this.db.exec('ALTER TABLE alarm_subscriptions ADD COLUMN thresholds TEXT');
    // Added 2026-12-06: the alarms announced, so a restart neither announces them again nor forgets them.
    this.db.exec('CREATE TABLE IF NOT EXISTS alarm_announced (node TEXT PRIMARY KEY, announced TEXT NOT NULL)');
  }

  recall(node: string): Promise<AnnouncedAlarm[]> {
    const row = this.db.prepare<[string], { announced: string }>('SELECT announced FROM alarm_announced WHERE node = ?').get(node);
    return Promise.resolve(row ? fromAnnouncedColumn(row.announced) : []);
  }

  remember(node: string, announced: AnnouncedAlarm[]): Promise<void> {
    this.db.prepare('INSERT INTO alarm_announced (node, announced) VALUES (?, ?) ON CONFLICT (node) DO UPDATE SET announced = excluded.announced').run(node, JSON.stringify(announced));
    return Promise.resolve();
  }

  list(owner?: string): Promise<AlarmSubscription[]> {
    const rows = owner === undefined
      ? this.db.prepare<[], SubscriptionRow>('SELECT * FROM alarm_subscriptions ORDER BY created_at, id').all()
      : this.db.prepare<[string], SubscriptionRow>('SELECT * FROM alarm_subscriptions WHERE owner = ? ORDER BY created_at, id').all(owner);
    return Promise.resolve(rows.map(fromSubscriptionRow));
  }

  put(s: AlarmSubscription): Promise<void> {
    this.db
      // An existing ID keeps its owner and creation time (as on PostgreSQL): a put never moves a subscription to another owner.
      .prepare(
        `INSERT INTO alarm_subscriptions (id, owner, rules, email, webhook_url, created_at, thresholds) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET rules = excluded.rules, email = excluded.email, webhook_url = excluded.webhook_url, thresholds = excluded.thresholds`,
      )
      .run(s.id, s.owner, JSON.stringify(s.rules), s.email, s.webhookUrl, s.createdAt, thresholdsColumn(s));
    return Promise.resolve();
  }

  remove(owner: string, id: string): Promise<boolean> {
    return Promise.resolve(this.db.prepare('DELETE FROM alarm_subscriptions WHERE owner = ? AND id = ?').run(owner, id).changes > 0);
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}
