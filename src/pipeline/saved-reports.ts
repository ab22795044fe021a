import { randomUUID } from 'node:crypto';
import { nextMailAfter, readSavedReport, reportPeriod, SAVED_REPORTS_PER_USER, type ReportDefinition, type SavedReport, type SavedReportInput } from '../domain/saved-report.js';
import type { SavedReports } from '../ports/saved-reports.js';
import type { RecipientAnswer } from '../ports/mail-recipients.js';
import type { RecipientConfirmation } from './mail-recipients.js';
import type { Reports, Viewer } from './reports.js';

/** The reports page's filters as the Reports computation takes them, over the period ending `now`. */
export function definitionFilter(d: Pick<ReportDefinition, 'period' | 'channels' | 'sender' | 'recipient'>, now: number) {
  const period = reportPeriod(d.period, now);
  return {
    period,
    filter: {
      fromMs: period.fromMs,
      toMs: period.toMs,
      granularity: period.granularity,
      ...(d.channels.length ? { channels: d.channels } : {}),
      ...(d.sender ? { sender: d.sender } : {}),
      ...(d.recipient ? { recipient: d.recipient } : {}),
    },
  };
}

/** What a definition runs: the reports page's computation, as its owner's viewer, over the period ending now. */
export async function runDefinition(reports: Pick<Reports, 'throughput' | 'latency'>, viewer: Viewer, d: ReportDefinition, now: number) {
  const { period, filter } = definitionFilter(d, now);
  const rows: Array<Record<string, unknown>> = d.report === 'throughput' ? await reports.throughput(viewer, filter) : await reports.latency(viewer, filter);
  return { period, rows };
}

export interface SaveReportDeps {
  store: Pick<SavedReports, 'create'>;
  /** An interface ID in the catalogue's spelling, or undefined: no channel of this DIP. */
  channelId(id: string): string | undefined;
  /** Whether saved reports may be e-mailed here (an SMTP server is configured). */
  mailing: boolean;
  /** Asks a report's address to confirm it takes the e-mail (null: no e-mail here). */
  recipients: Pick<RecipientConfirmation, 'ask'> | null;
  now(): number;
}

/**
 * Saves a report for its owner (reportOwner or systemOwner; the participant it acts for, null for an operator),
 * or says why not: the input's own problem, no e-mail where none is sent, the owner's cap, a name it uses.
 */
export async function saveReport(deps: SaveReportDeps, owner: string, participantDipId: string | null, input: SavedReportInput): Promise<{ ok: true; report: SavedReport; recipient: RecipientAnswer | null } | { ok: false; problem: string }> {
  const read = readSavedReport(input, (id) => deps.channelId(id));
  if (!read.ok) return read;
  if (read.mailing && !deps.mailing) return { ok: false, problem: 'every: this DIP sends no e-mail (no SMTP server is configured): save it without' };
  const now = deps.now();
  const report: SavedReport = {
    id: randomUUID(),
    owner,
    participantDipId,
    name: read.name,
    definition: read.definition,
    mailing: read.mailing,
    createdAt: now,
    nextDueAt: read.mailing ? nextMailAfter(read.mailing.every, now) : null,
  };
  const refused = await deps.store.create(report, SAVED_REPORTS_PER_USER);
  if (refused === 'full') return { ok: false, problem: `you keep ${SAVED_REPORTS_PER_USER} saved reports, the most one user may: delete one first` };
  if (refused === 'name-taken') return { ok: false, problem: `name: you have a saved report called "${read.name}" already` };
  // The address says whether it takes the e-mail (SavedReportMail sends nothing to it before).
  const recipient = report.mailing && deps.recipients ? await deps.recipients.ask(owner, report.mailing.to) : null;
  return { ok: true, report, recipient };
}
