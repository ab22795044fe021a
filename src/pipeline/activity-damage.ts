import type { ActivityLogStore, ActivityLoss } from '../ports/activity-log.js';

/** The activity log's damage as GET /admin/health and the `storage` alarm tell it: since the first loss not acknowledged. */
export interface ActivityDamage {
  since: number;
  /** Each loss or damage found and not yet acknowledged, oldest first. */
  found: ActivityLoss[];
}

/**
 * The losses and damage of the API activity log (a WAL short of committed records, the file damaged, the
 * log replaced) that no operator has acknowledged. Found once, at an open, and then gone from every place
 * the operator on call looks but the journal: the alarm lasted as long as the process that found it and
 * health never said it. So it holds until an operator says it has been dealt with (the records restored
 * from a backup, or their loss taken note of for the audit), across restarts, and the acknowledgement is
 * journalled. Read from the store at the start; GET /admin/health reads only this, never the store.
 */
export class ActivityLogDamage {
  private found: ActivityLoss[] = [];

  constructor(private readonly store: Pick<ActivityLogStore, 'unacknowledgedLosses' | 'acknowledgeLosses'>) {}

  /** What the store holds unacknowledged (a store that keeps no losses, PostgreSQL's: nothing). */
  async load(): Promise<void> {
    this.found = (await this.store.unacknowledgedLosses?.()) ?? [];
  }

  current(): ActivityDamage | null {
    const [first] = this.found;
    return first === undefined ? null : { since: first.at, found: [...this.found] };
  }

  /** Acknowledges what is found now (what health showed), by `by`: what was acknowledged, oldest first. */
  async acknowledge(by: string, at: number): Promise<ActivityLoss[]> {
    const acknowledged = this.found;
    if (acknowledged.length === 0) return [];
    await this.store.acknowledgeLosses?.(acknowledged, by, at);
    this.found = this.found.filter((l) => !acknowledged.includes(l));
    return acknowledged;
  }
}
