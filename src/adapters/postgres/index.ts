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
  const backfill = new Backfill(log, options);
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
    backfillPending: () => !backfill.done,
    onHealthChange: (l) => d.onHealthChange(l),
    onGroupCommit: (l) => d.onGroupCommit(l),
    useSealer: (s) => d.useSealer(s),
    async close() {
      await backfill.stop();
      await registry.close();
      await log.drain();
      await d.close();
    },
  };
}

/** How long after a failed run the backfill tries again (the store out of reach, a lock it waited too long for). */
export const BACKFILL_RETRY_MS = 60_000;

/**
 * After the schema, in the background: the upgrade of 2026-12-06's rows (PgMessageLog.backfillAcknowledged)
 * filled in batches, none of them waited for (their readers compute the same meanwhile). A run that fails is
 * logged and run again a minute on (it goes on with the rows still NULL), until one finishes: `done`.
 */
class Backfill {
  done = false;
  private running: Promise<void> = Promise.resolve();
  private retry: (() => void) | null = null;
  private stopped = false;

  constructor(private readonly log: PgMessageLog, private readonly options: Pick<PostgresOptions, 'clock' | 'logger'>) {
    this.run();
  }

  private run(): void {
    this.retry = null;
    this.running = this.log.backfillAcknowledged().then(
      (filled) => {
        // Stopped midway is not finished: the next start goes on.
        if (this.stopped) return;
        this.done = true;
        if (filled > 0) this.options.logger?.info({ filled }, 'the acknowledged positions the upgrade left empty are filled');
      },
      (err: unknown) => {
        if (this.stopped) return;
        this.options.logger?.warn({ err, retryInMs: BACKFILL_RETRY_MS }, 'could not fill the acknowledged positions the upgrade left empty (read from the delivery journal meanwhile): trying again');
        this.retry = this.options.clock.after(BACKFILL_RETRY_MS, () => this.run());
      },
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.retry?.();
    this.log.stopBackfill();
    await this.running;
  }
}
