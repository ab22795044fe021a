import { DIP_ID_PATTERN, type ParticipantProfile } from '../domain/participant.js';
import type { Logger } from '../ports/logger.js';
import type { Mailer } from '../ports/mailer.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { RegistryStore } from '../ports/registry.js';
import { PROFILE_RECORD } from './registry.js';

/** What telling a participant's administrators came to: sent, no address kept for them, or the e-mail failed / no SMTP. */
export type AdminNoticeOutcome = 'sent' | 'no-address' | 'unsent' | 'no-mail';
/** What the operator did: made an administrator, or enabled a disabled one again (as good a takeover as making one). */
export type AdminAct = 'created' | 'enabled';

export interface AdminNoticeDeps {
  /** The DIP's SMTP sender; null: none configured (the journal entry is all there is). */
  mailer: Pick<Mailer, 'send'> | null;
  store: Pick<RegistryStore, 'records'>;
  journal: Pick<OperatorJournal, 'append'>;
  logger: Logger;
  now(): number;
}

/**
 * Tells a participant's administrators that a DIP operator made an administrator of its portal (created one,
 * or enabled a disabled one again): an operator can otherwise take a participant's account over with nothing the
 * participant sees. The address is the one the participant's administrators keep for the DIP's notices
 * (ParticipantProfile.maintenanceEmail: set by them, or the onboarding application's contact), read from
 * the store (not a node's cache). The text is fixed: nothing the operator typed (username, display name)
 * goes into it, so the notice cannot be turned into a message of the operator's; the participant's portal
 * Users page names the account and who created it. Journalled as `participant.admin-notice` against the
 * participant, with what came of it.
 */
export async function tellAdminsOfOperatorAdmin(deps: AdminNoticeDeps, dipId: string, actor: string, act: AdminAct = 'created'): Promise<AdminNoticeOutcome> {
  const at = deps.now();
  const profile = (await deps.store.records(PROFILE_RECORD)).find((r) => r.key === dipId)?.doc as ParticipantProfile | undefined;
  const address = profile?.maintenanceEmail ?? null;
  let told: AdminNoticeOutcome;
  if (!DIP_ID_PATTERN.test(dipId)) told = 'no-address';
  else if (address === null) told = 'no-address';
  else if (deps.mailer === null) told = 'no-mail';
  else {
    try {
      await deps.mailer.send(
        address,
        act === 'created' ? `OpenDIP: a DIP operator added an administrator to ${dipId}'s portal` : `OpenDIP: a DIP operator enabled an administrator of ${dipId}'s portal again`,
        `At ${new Date(at).toISOString()} an operator of the Data Integration Platform ${act === 'created' ? 'made a new administrator' : 'enabled again a disabled administrator'} of ${dipId}'s user portal account.\n\nAn administrator of ${dipId} can create and disable its users, reset their authenticators and act for ${dipId} in the portal.\n\nIf your organisation did not ask the DIP operator for this, sign in to the user portal, check the Users page (it names the account and who created it), disable any account you do not recognise, and contact the DIP's service desk.\n\nYou are sent this because this address is where ${dipId}'s administrators receive the DIP's notices.\n`,
      );
      told = 'sent';
    } catch (err) {
      deps.logger.error({ err, participant: dipId }, "the notice of an operator-made administrator could not be e-mailed to the participant's administrators");
      told = 'unsent';
    }
  }
  try {
    await deps.journal.append({ at, actor, action: 'participant.admin-notice', target: dipId, before: null, after: { told, act }, status: null });
  } catch (err) {
    deps.logger.error({ err, participant: dipId }, 'could not journal the notice of an operator-made administrator');
  }
  return told;
}
