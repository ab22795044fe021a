import type { AlarmRule, AlarmSubscription, AlarmThresholds, AnnouncedAlarm } from '../ports/alarms.js';

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

/** The alarms a node announced, as both SQL stores keep them (one JSON array per node); a damaged value reads as none (they are announced again). */
export function fromAnnouncedColumn(column: string): AnnouncedAlarm[] {
  try {
    const parsed: unknown = JSON.parse(column);
    return Array.isArray(parsed) ? parsed.filter(isAnnounced) : [];
  } catch {
    return [];
  }
}

function isAnnounced(a: unknown): a is AnnouncedAlarm {
  if (typeof a !== 'object' || a === null) return false;
  const r = a as Record<string, unknown>;
  const c = r['condition'] as Record<string, unknown> | null | undefined;
  return typeof r['asOf'] === 'number' && typeof r['announcedAt'] === 'number' && typeof c === 'object' && c !== null && typeof c['key'] === 'string' && typeof c['rule'] === 'string' && typeof c['since'] === 'number' && typeof c['summary'] === 'string';
}
