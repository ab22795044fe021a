import { openOnboardingApplications } from '../adapters/backend.js';
import { SmtpMailer } from '../adapters/mail/smtp-mailer.js';
import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import { Onboarding, type OnboardingDeps } from '../pipeline/onboarding.js';

/**
 * Companies' self-onboarding (spec 5.12.1): its store (a file of its own, or a table on the cluster's
 * PostgreSQL) and its e-mail, through the SMTP server the alarms use (observability.alarms.smtp).
 */
export async function assembleOnboarding(
  config: DipConfig,
  deps: Omit<OnboardingDeps, 'store' | 'mailer' | 'maxWaiting' | 'linkMs'>,
  life: Lifecycle,
): Promise<Onboarding> {
  const store = await openOnboardingApplications(config);
  life.started('onboarding applications', () => store.close());
  const mailer = new SmtpMailer(config.observability.alarms.smtp);
  life.started('onboarding e-mail', () => mailer.close());
  return new Onboarding({ ...deps, store, mailer, maxWaiting: config.onboarding.maxWaiting, linkMs: config.onboarding.linkHours * 3_600_000 });
}
