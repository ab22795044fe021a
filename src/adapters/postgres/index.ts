import { PgTraces } from './traces.js';
import { PgReportCounts } from './report-counts.js';
import type { Backend } from '../../ports/backend.js';
import { PgArchive } from './archive.js';
import { PgDatabase, type PostgresOptions } from './database.js';
import { PgDataKeys } from './data-keys.js';
import { PgDeadLetters } from './dead-letters.js';
import { PgMessageLog } from './message-log.js';
import { PgMpanStore } from './mpan.js';
import { PgPublications } from './publications.js';
import { PgPortalAccounts } from './portal-accounts.js';
import { PgSavedReports } from './saved-reports.js';
import { PgMailRecipients } from './mail-recipients.js';
import { RecordMaintenanceNotices } from '../maintenance-records.js';
import { PgMaintenanceSends } from './maintenance-sends.js';
import { PgRegistry } from './registry.js';
import { PgRequeueJobs } from './requeue-jobs.js';
import { PgOperatorJournal } from './operator-journal.js';

export type { PostgresOptions };

/** The PostgreSQL store: every port of the Backend over one database (the cluster's system of record). */
export interface PostgresBackend extends Backend {
  readonly archive: PgArchive;
}

export async function openPostgresBackend(options: PostgresOptions): Promise<PostgresBackend> {
  const d = await PgDatabase.open(options);
  const log = new PgMessageLog(d);
  // After the schema, in the background: the upgrade of 2026-12-06's rows filled in batches, none of them
  // waited for (their readers compute the same meanwhile). One that fails goes on at the next start.
  const backfill = log.backfillAcknowledged().catch(() => 0);
  const registry = new PgRegistry(d);
  return {
    kind: 'postgres',
    log,
    deadLetters: new PgDeadLetters(d),
    archive: new PgArchive(d),
    registry,
    mpan: new PgMpanStore(d),
    dataKeys: new PgDataKeys(d),
    traces: new PgTraces(d),
    reportCounts: new PgReportCounts(d),
    requeueJobs: new PgRequeueJobs(d),
    publications: new PgPublications(d),
    journal: new PgOperatorJournal(d),
    portalAccounts: new PgPortalAccounts(d),
    savedReports: new PgSavedReports(d),
    mailRecipients: new PgMailRecipients(d),
    maintenance: new RecordMaintenanceNotices(registry),
    maintenanceSends: new PgMaintenanceSends(d),
    health: () => d.health(),
    onHealthChange: (l) => d.onHealthChange(l),
    onGroupCommit: (l) => d.onGroupCommit(l),
    useSealer: (s) => d.useSealer(s),
    async close() {
      log.stopBackfill();
      await backfill;
      await registry.close();
      await log.drain();
      await d.close();
    },
  };
}
