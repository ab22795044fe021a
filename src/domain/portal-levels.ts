/**
 * What a participant's portal user may do: one level each, chosen by the participant's administrators
 * (the user portal's Users page), as an operator has one role (src/domain/operators.ts). Each level can do
 * all the one before it can:
 *  - viewer: reads the participant's pages (messages, journeys, audit reports, status messages, webhooks'
 *    calls, alarms, publications, reports, API activity) and changes nothing;
 *  - operations: also runs its message flow: webhooks (status messages' too), test messages, replay and
 *    requeue, alarm subscriptions;
 *  - admin: also manages the participant: its users and their levels, certificates, roles and channels,
 *    DIP Connection Provider (the participant's security officer).
 * The names are the operator roles' where they mean the same (viewer, admin); the middle one is
 * `operations`, not `operator`, so that a participant's user is never mistaken for an operator of the DIP.
 */
export const USER_LEVELS = ['viewer', 'operations', 'admin'] as const;
export type UserLevel = (typeof USER_LEVELS)[number];

/** What each level adds, for pages and refusals. */
export const LEVEL_POWERS: Readonly<Record<UserLevel, string>> = {
  viewer: 'reads messages, journeys, audit reports, alarms and publications; changes nothing',
  operations: 'also sets webhooks, sends test messages, replays and requeues, subscribes to alarms',
  admin: 'also manages users, certificates, roles and channels and the connection provider',
};

export const isUserLevel = (v: string): v is UserLevel => (USER_LEVELS as readonly string[]).includes(v);

/**
 * A user's level. Accounts stored before levels have none: an administrator reads as `admin`, any other
 * user as `operations`, what every non-administrator could do then, so nobody loses access at the upgrade.
 */
export function levelOf(account: { level?: UserLevel; admin: boolean }): UserLevel {
  return account.level ?? (account.admin ? 'admin' : 'operations');
}

/** Whether a user of level `has` may do what needs `needs`. */
export function mayAct(has: UserLevel, needs: UserLevel): boolean {
  return USER_LEVELS.indexOf(has) >= USER_LEVELS.indexOf(needs);
}
