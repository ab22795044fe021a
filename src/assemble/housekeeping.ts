import type { DipConfig } from '../config.js';
import { RecipientConfirmation } from '../pipeline/mail-recipients.js';
import type { Lifecycle } from '../lifecycle.js';
import type { ChannelSettings } from '../pipeline/channel-settings.js';
import type { Registry } from '../pipeline/registry.js';
import { Retention } from '../pipeline/retention.js';
import { SavedReportMail, type SavedReportMailDeps } from '../pipeline/saved-report-mail.js';
import { SmtpMailer } from '../adapters/mail/smtp-mailer.js';
import type { Backend } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import { expiringAll } from '../security/expiry.js';

/** Archive retention: archived messages past their channel's retention and old delivery attempts, in batches. */
export function startRetention(config: DipConfig, backend: Backend, channelSettings: ChannelSettings, clock: Clock, logger: Logger, life: Lifecycle): Retention {
  const retention = new Retention(
    backend.archive,
    {
      // Never shorter than a signature stays valid (2 × the clock skew): a submission is idempotent by its
      // sender references only while they are kept (README, Signatures and replays).
      archiveRetentionMs: (id) => Math.max((channelSettings.overrides()[id]?.archiveRetentionDays ?? config.archiveRetentionDays) * 86_400_000, 2 * config.maxClockSkewSeconds * 1000),
      attemptsRetentionMs: config.archiveRetentionDays * 86_400_000,
      intervalMs: config.purgeIntervalSeconds * 1000,
      batchSize: 1000,
    },
    clock,
    logger,
    backend.requeueJobs,
  );
  retention.start();
  life.started('retention', () => retention.stop());
  return retention;
}

/** Expiring certificates: warned about at start, then once a day. */
export function startExpiryWarnings(config: DipConfig, pkiDir: string, registry: Registry, clock: Clock, logger: Logger, life: Lifecycle): void {
  const warnExpiring = (): void => {
    try {
      for (const c of expiringAll(pkiDir, config.trustedCaFiles, registry.participants())) {
        logger.warn({ certificate: c }, c.daysLeft < 0 ? `certificate of ${c.owner} has expired` : `certificate of ${c.owner} expires in ${c.daysLeft} days`);
      }
    } catch (err) {
      logger.error({ err }, 'could not check certificates for expiry');
    }
  };
  warnExpiring();
  life.started('expiry warnings', clock.every(86_400_000, warnExpiring));
}

/**
 * Saved reports e-mailed daily or weekly, through the one SMTP server (observability.alarms.smtp); not
 * started without one (the portal then offers no e-mail). On every node: each e-mail is claimed in the store.
 * Its addresses' confirmations (the portal asks when a report is saved), or null without SMTP.
 */
export function startSavedReportMail(config: DipConfig, backend: Backend, owners: Pick<SavedReportMailDeps, 'reports' | 'mayAct' | 'operatorEnabled' | 'portalUrl'>, clock: Clock, logger: Logger, life: Lifecycle): RecipientConfirmation | null {
  if (!config.observability.alarms.smtp) return null;
  const mailer = new SmtpMailer(config.observability.alarms.smtp);
  const recipients = new RecipientConfirmation({ store: backend.mailRecipients, mailer, clock, logger, portalUrl: owners.portalUrl });
  const mail = new SavedReportMail({ ...owners, store: backend.savedReports, recipients, accounts: backend.portalAccounts, mailer, clock, logger });
  mail.start();
  life.started('saved report e-mail', async () => {
    await mail.stop();
    await mailer.close();
  });
  return recipients;
}
