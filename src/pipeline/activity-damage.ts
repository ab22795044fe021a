import type { ActivityLogStore, ActivityLoss } from '../ports/activity-log.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { OperatorJournal } from '../ports/operator-journal.js';

/** The activity log's damage as GET /admin/health and the `storage` alarm tell it: since the first loss not acknowledged. */
export interface ActivityDamage {
  since: number;
  /** Each loss or damage found and not yet acknowledged, oldest first. */
  found: ActivityLoss[];
}

/**
 * SQLite's answers that say the file itself is damaged or cannot be read (SqliteError.code, extended codes
 * included: SQLITE_CORRUPT_INDEX, SQLITE_IOERR_READ, …), not that it is busy or full.
 */
const DAMAGE = /^SQLITE_(?:CORRUPT|NOTADB|IOERR)/;

type DamageStore = Pick<ActivityLogStore, 'unacknowledgedLosses' | 'acknowledgeLosses' | 'keepLoss'>;

/**
 * The losses and damage of the API activity log (a WAL short of committed records, the file damaged, the
 * log replaced, SQLITE_CORRUPT met while running) that no operator has acknowledged. Found once and then
 * gone from every place the operator on call looks but the journal: the alarm lasted as long as the
 * process that found it and health never said it. So it holds until an operator says it has been dealt
 * with (the records restored from a backup, or their loss taken note of for the audit), across restarts,
 * and the acknowledgement is journalled. Read from the store at the start; GET /admin/health reads only
 * this, never the store.
 */
export class ActivityLogDamage {
  private found: ActivityLoss[] = [];
  /** Damage met while running, told already: each refused write after it says the same (one journal entry, not one a flush). */
  private metWhileRunning = false;

  constructor(
    private readonly store: DamageStore,
    private readonly tell: { clock: Pick<Clock, 'now'>; logger: Logger; journal: Pick<OperatorJournal, 'append'> },
  ) {}

  /** What the store holds unacknowledged (a store that keeps no losses, PostgreSQL's: nothing). */
  async load(): Promise<void> {
    const stored = (await this.store.unacknowledgedLosses?.()) ?? [];
    // Damage met before this read (told, its note perhaps kept in the file since): kept, once.
    const metBefore = this.found.filter((l) => !stored.some((s) => s.at === l.at && s.lost === l.lost));
    this.found = [...stored, ...metBefore];
  }

  current(): ActivityDamage | null {
    const [first] = this.found;
    return first === undefined ? null : { since: first.at, found: [...this.found] };
  }

  /** Acknowledges what is found now (what health showed), by `by`: what was acknowledged, oldest first. */
  async acknowledge(by: string, at: number): Promise<ActivityLoss[]> {
    // What was found when asked: a copy, since damage met while the acknowledgement is written is a new finding.
    const acknowledged = [...this.found];
    if (acknowledged.length === 0) return [];
    await this.store.acknowledgeLosses?.(acknowledged, by, at);
    this.found = this.found.filter((l) => !acknowledged.includes(l));
    // Damage met again after this is a new finding, told again.
    this.metWhileRunning = false;
    return acknowledged;
  }

  /**
   * An error the store answered: when it says the file is damaged, told once (log, journal, and from now
   * health and the `storage` alarm), and kept in the file when it still takes the note. The caller goes on
   * as it would for any refused write (the recorder keeps its records waiting, as for a full disk).
   */
  met(err: unknown): void {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
    if (!DAMAGE.test(code) || this.metWhileRunning) return;
    this.metWhileRunning = true;
    const message = err instanceof Error ? err.message : String(err);
    const loss = {
      at: this.tell.clock.now(),
      lost: `activity.db answered ${code} while running (${message}): the file is damaged or cannot be read, so records in its damaged pages are lost and new ones wait in memory while writes fail. ` +
        'Stop the DIP, keep the file, restore activity.db from a backup (docs/disaster-recovery.md); dip audit verify names the first record it cannot read.',
    };
    this.found.push(loss);
    this.tell.logger.error({ err, lost: loss.lost }, 'activity log: its file is damaged (met while running)');
    // Each is best effort (the damaged file may not take the note; the journal is dip.db): what was told stays told.
    this.tell.journal
      .append({ at: loss.at, actor: 'bootstrap', action: 'storage.activity-damaged', target: 'activity.db', before: null, after: { lost: loss.lost }, status: null })
      .catch((e: unknown) => this.tell.logger.error({ err: e }, 'activity log: could not journal its damage'));
    void this.store.keepLoss?.(loss).catch(() => undefined);
  }
}

/**
 * The store as the DIP uses it, every error it answers shown to `damage` first (then thrown as it was): the
 * recorder's writes, the operator's and portals' reads and the reports all meet the file's damage alike.
 */
export function damageWatched(store: ActivityLogStore, damage: Pick<ActivityLogDamage, 'met'>): ActivityLogStore {
  const seen = (err: unknown): never => {
    damage.met(err);
    throw err;
  };
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        try {
          const answer: unknown = Reflect.apply(value, target, args);
          return answer instanceof Promise ? answer.catch(seen) : answer;
        } catch (err) {
          return seen(err);
        }
      };
    },
  });
}
