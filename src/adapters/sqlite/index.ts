import { SqliteTraces } from './traces.js';
import { SqliteReportCounts } from './report-counts.js';
import type { Backend } from '../../ports/backend.js';
import type { QueueRef } from '../../ports/message-log.js';
import { SqliteArchive } from './archive.js';
import { SqliteDatabase, type SqliteOptions } from './database.js';
import { SqliteDataKeys } from './data-keys.js';
import { SqliteDeadLetters } from './dead-letters.js';
import { SqliteMessageLog } from './message-log.js';
import { SqliteMpanStore } from './mpan.js';
import { SqlitePublications } from './publications.js';
import { SqlitePortalAccounts } from './portal-accounts.js';
import { SqliteSavedReports } from './saved-reports.js';
import { SqliteMailRecipients } from './mail-recipients.js';
import { SqliteRegistry } from './registry.js';
import { SqliteRequeueJobs } from './requeue-jobs.js';
import { SqliteOperatorJournal } from './operator-journal.js';
import { RecordMaintenanceNotices } from '../maintenance-records.js';
import { SqliteMaintenanceSends } from './maintenance-sends.js';

export type { SqliteOptions };

/** The embedded backend: one SQLite file, every port over it. */
export interface SqliteBackend extends Backend {
  readonly kind: 'sqlite';
  readonly file: string;
  /** Caps the database's size: past it writes fail as on a full disk (an operator's guard, and tests' full disk). */
  setSizeLimit(bytes: number | null): void;
  /** The queue's highest durable position, for delivery processes reading the file over their own connection. */
  durableHead(queue: QueueRef): number;
  /**
   * Delivery runs in other processes, which read messages from the file: stop keeping each appended
   * message's outbound copy in this process for delivery (src/adapters/sqlite/database.ts, keepsAppended).
   */
  deliveredElsewhere(): void;
  /** Opened accepting committed transactions the WAL had lost (SqliteOptions.acceptWalLoss): what was lost; else null. */
  readonly walLossAccepted: string | null;
}

export function openSqliteBackend(file: string, options: SqliteOptions): SqliteBackend {
  const d = new SqliteDatabase(file, options);
  const registry = new SqliteRegistry(d);
  return {
    kind: 'sqlite',
    file,
    log: new SqliteMessageLog(d),
    deadLetters: new SqliteDeadLetters(d),
    archive: new SqliteArchive(d),
    registry,
    mpan: new SqliteMpanStore(d),
    dataKeys: new SqliteDataKeys(d),
    traces: new SqliteTraces(d),
    reportCounts: new SqliteReportCounts(d),
    requeueJobs: new SqliteRequeueJobs(d),
    publications: new SqlitePublications(d),
    journal: new SqliteOperatorJournal(d),
    portalAccounts: new SqlitePortalAccounts(d),
    savedReports: new SqliteSavedReports(d),
    mailRecipients: new SqliteMailRecipients(d),
    maintenance: new RecordMaintenanceNotices(registry),
    maintenanceSends: new SqliteMaintenanceSends(d),
    health: () => d.health(),
    backfillPending: () => false,
    onHealthChange: (l) => d.onHealthChange(l),
    onGroupCommit: (l) => d.onGroupCommit(l),
    useSealer: (s) => d.useSealer(s),
    setSizeLimit: (bytes) => d.setSizeLimit(bytes),
    durableHead: (q) => d.durableHead(q.recipientDipId, q.channel),
    deliveredElsewhere: () => d.deliveredElsewhere(),
    walLossAccepted: d.walLossAccepted,
    close: () => d.close(),
  };
}
