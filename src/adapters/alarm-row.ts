import type { AlarmRule, AlarmSubscription, AlarmThresholds } from '../ports/alarms.js';

/** An alarm subscription as both SQL stores keep it (rules as a JSON array, thresholds as a JSON object or NULL). */
export interface SubscriptionRow {
  id: string;
  owner: string;
  rules: string;
  email: string | null;
  webhook_url: string | null;
  created_at: number;
  /** NULL in every row written before subscriptions had thresholds: the operator's apply. */
  thresholds: string | null;
}

export const fromSubscriptionRow = (r: SubscriptionRow): AlarmSubscription => ({
  id: r.id,
  owner: r.owner,
  rules: JSON.parse(r.rules) as AlarmRule[],
  email: r.email,
  webhookUrl: r.webhook_url,
  createdAt: Number(r.created_at),
  ...(r.thresholds === null ? {} : { thresholds: JSON.parse(r.thresholds) as AlarmThresholds }),
});

/** A subscription's thresholds as a row's column. */
export const thresholdsColumn = (s: AlarmSubscription): string | null => (s.thresholds ? JSON.stringify(s.thresholds) : null);
