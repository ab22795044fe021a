import type { AlarmRule, AlarmSubscription } from '../ports/alarms.js';

/** An alarm subscription as both SQL stores keep it (rules as a JSON array). */
export interface SubscriptionRow {
  id: string;
  owner: string;
  rules: string;
  email: string | null;
  webhook_url: string | null;
  created_at: number;
}

export const fromSubscriptionRow = (r: SubscriptionRow): AlarmSubscription => ({
  id: r.id,
  owner: r.owner,
  rules: JSON.parse(r.rules) as AlarmRule[],
  email: r.email,
  webhookUrl: r.webhook_url,
  createdAt: Number(r.created_at),
});
