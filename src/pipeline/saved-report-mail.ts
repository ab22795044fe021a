import { definitionQuery, ownerOf, describeDefinition, nextMailAfter, oneLineUserText, quotedUserText, type ReportDefinition, type SavedReport } from '../domain/saved-report.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Mailer } from '../ports/mailer.js';
import type { PortalAccounts } from '../ports/portal-accounts.js';
import type { SavedReports } from '../ports/saved-reports.js';
import { toCsv, type Reports, type Viewer } from './reports.js';
import type { RecipientConfirmation } from './mail-recipients.js';
import { runDefinition } from './saved-reports.js';

/** How often due e-mails are looked for: they are due on the hour (MAIL_HOUR_UTC), so a minute late at most. */
export const SAVED_REPORT_MAIL_EVERY_MS = 60_000;
/** The most due e-mails one pass claims (the rest wait for the next pass). */
const DUE_PER_PASS = 50;

export interface SavedReportMailDeps {
  store: Pick<SavedReports, 'due' | 'claimDue'>;
  /** Whether a report's address confirmed it takes the owner's reports: nothing goes to one that did not. */
  recipients: Pick<RecipientConfirmation, 'confirmed'>;
  reports: Pick<Reports, 'throughput' | 'latency'>;
  accounts: Pick<PortalAccounts, 'account'>;
  /**
   * Whether a participant may act now (registered, not suspended: Registry.active, built on
   * Registry.refusal): else its users and its systems are sent nothing, as its portal and API refuse them.
   */
  mayAct(dipId: string): boolean;
  /** Whether an operator account of that name is enabled: an automation account's reports (no portal sign-in) are sent while it is. */
  operatorEnabled(name: string): Promise<boolean>;
  mailer: Mailer;
  clock: Clock;
  logger: Logger;
  /** The user and operator portals' base address, for the summary's link. */
  portalUrl(): string;
}

/**
 * Saved reports e-mailed daily or weekly (src/domain/saved-report.ts). Every node looks for due e-mails;
 * each is claimed in the shared store by one conditional write (SavedReports.claimDue) before it is sent,
 * so in a cluster exactly one node sends it, with no lease to hold: the store that holds the definitions
 * decides. A claim moves the e-mail on to its next time first: a send that fails is logged and not
 * retried (the next one comes at its time), rather than sent twice by two nodes.
 */
export class SavedReportMail {
  private cancel: Cancel | null = null;
  private running: Promise<number> | null = null;

  constructor(private readonly deps: SavedReportMailDeps) {}

  start(): void {
    this.cancel = this.deps.clock.every(SAVED_REPORT_MAIL_EVERY_MS, () => {
      void this.runOnce().catch((err: unknown) => this.deps.logger.error({ err }, 'saved reports: a pass over the due e-mails failed; the next runs at its interval'));
    });
  }

  async stop(): Promise<void> {
    this.cancel?.();
    await this.running;
  }

  /** One pass: every due e-mail this node claims is sent. How many were sent. Overlapping calls share a pass. */
  runOnce(): Promise<number> {
    this.running ??= this.pass().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(): Promise<number> {
    const now = this.deps.clock.now();
    let sent = 0;
    for (const r of await this.deps.store.due(now, DUE_PER_PASS)) {
      if (!r.mailing || r.nextDueAt === null) continue;
      if (!(await this.deps.store.claimDue(r.id, r.nextDueAt, nextMailAfter(r.mailing.every, now)))) continue;
      try {
        if (await this.send(r, now)) sent += 1;
      } catch (err) {
        this.deps.logger.warn({ err, owner: r.owner, report: r.id }, 'saved reports: an e-mailed report was not sent; the next goes at its time');
      }
    }
    return sent;
  }

  private async send(r: SavedReport, now: number): Promise<boolean> {
    const mailing = r.mailing!;
    const door = await this.door(r);
    if (door === null) {
      this.deps.logger.info({ owner: r.owner, report: r.id }, 'saved reports: not e-mailed, its owner can no longer read it');
      return false;
    }
    if (!(await this.deps.recipients.confirmed(r.owner, mailing.to))) {
      this.deps.logger.info({ owner: r.owner, report: r.id }, 'saved reports: not e-mailed, its address has not confirmed it takes the reports');
      return false;
    }
    const viewer: Viewer = r.participantDipId === null ? { kind: 'operator' } : { kind: 'participant', dipId: r.participantDipId };
    const { period, rows } = await runDefinition(this.deps.reports, viewer, r.definition, now);
    const page = `${this.deps.portalUrl()}${r.participantDipId === null ? '/operator' : '/portal'}/reports?${definitionQuery(r.definition)}`;
    const span = `${new Date(period.fromMs).toISOString()} to ${new Date(period.toMs).toISOString()}`;
    // The name is the user's text: quoted on one line wherever it appears (quotedUserText), never lines of the DIP's.
    const name = quotedUserText(r.name);
    const head = `Your saved report named ${name} (${describeDefinition(r.definition)}), ${span}.`;
    const stop = door === 'portal' ? `deleting ${name} on the portal's Reports page` : `${door === 'participant-api' ? 'DELETE /observability' : 'DELETE /admin'}/saved-reports/${r.id}`;
    const footer = `\n\nThe report in the portal: ${page}\nThis report is e-mailed ${mailing.every}; stop it by ${stop}.\n`;
    const subject = `OpenDIP report: ${oneLineUserText(r.name)}`;
    if (mailing.format === 'csv') {
      const filename = `${r.definition.report}-${new Date(period.toMs).toISOString().slice(0, 10)}.csv`;
      await this.deps.mailer.send(mailing.to, subject, `${head}\n\nThe report's rows are attached as CSV (${rows.length} row(s)).${footer}`, [{ filename, contentType: 'text/csv; charset=utf-8', content: toCsv(rows) }]);
    } else {
      await this.deps.mailer.send(mailing.to, subject, `${head}\n\n${summaryOf(r.definition, rows)}${footer}`);
    }
    this.deps.logger.info({ owner: r.owner, report: r.id, every: mailing.every, format: mailing.format }, 'saved reports: report e-mailed');
    return true;
  }

  /**
   * Where the report's owner may still read it as when it was saved, so where it is stopped; null: nowhere,
   * and it is sent nothing (its reports stay until deleted or the owner is back). A portal account disabled,
   * removed or moved to another participant since, a participant that may not act (its users' and its
   * systems' alike), an operator whose operator account is disabled (with or without a portal sign-in).
   */
  private async door(r: SavedReport): Promise<'portal' | 'participant-api' | 'operator-api' | null> {
    const owner = ownerOf(r.owner);
    if (!owner || (r.participantDipId !== null && !this.deps.mayAct(r.participantDipId))) return null;
    if (owner.realm === 'participant') return owner.dipId === r.participantDipId ? 'participant-api' : null;
    // An operator's reports are DIP-wide: the operator account itself must be enabled, with or without a portal
    // sign-in (disabling an operator ends their sessions and leaves the sign-in's own flag alone).
    if (owner.realm === 'operator' && !(await this.deps.operatorEnabled(owner.username))) return null;
    const account = await this.deps.accounts.account(owner.realm, owner.username);
    if (account) return !account.disabled && account.participantDipId === r.participantDipId ? 'portal' : null;
    // An operator calling the operator API alone (an automation account): no portal sign-in to read it by.
    return owner.realm === 'operator' ? 'operator-api' : null;
  }
}

/** A few lines of totals over the period (a summary e-mail): the page has the rest. */
function summaryOf(d: ReportDefinition, rows: ReadonlyArray<Record<string, unknown>>): string {
  const sum = (k: string) => rows.reduce((s, r) => s + (typeof r[k] === 'number' ? r[k] : 0), 0);
  if (d.report === 'throughput') return `Messages in: ${sum('in')}\nCopies delivered: ${sum('out')}\nErrors (dead letters): ${sum('errors')}\nCopies pending: ${sum('pending')}`;
  const counted = rows.map((r) => r.endToEnd as { count: number; maxMs: number | null } | undefined).filter((s) => s !== undefined);
  const worst = counted.reduce<number | null>((m, s) => (s.maxMs !== null && (m === null || s.maxMs > m) ? s.maxMs : m), null);
  return `Messages delivered: ${counted.reduce((s, x) => s + x.count, 0)}\nSlowest end to end: ${worst === null ? 'none delivered' : `${worst} ms`}`;
}
