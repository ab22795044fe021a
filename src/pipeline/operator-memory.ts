import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { PortalAccount } from '../ports/portal-accounts.js';
import type { SessionClaims } from '../security/portal-session.js';
import { automationAccountFor, enabledOperatorNamed, hasAdmin, personNamed, type OperatorAccount, type OperatorIdentity } from './operators.js';

/** How often a node reads the operator accounts for this memory while the store answers. */
export const OPERATOR_MEMORY_REFRESH_MS = 30_000;

/** One reading of everything an operator credential is checked against. */
interface Reading {
  at: number;
  /** Its place in the order readings started (see firstUsable). */
  number: number;
  accounts: OperatorAccount[];
  /** The operators' sign-in credentials by name: only what a session is checked against. */
  people: Map<string, Pick<PortalAccount, 'sessionEpoch' | 'disabled' | 'participantDipId'>>;
}

/**
 * The operator accounts as this node last read them, so that an operator can still read the operator API
 * (alarms, health, queues) while the store cannot be read: in a cluster that is PostgreSQL down or out of
 * reach, exactly when the operator on call needs the alarms, and when checking a session against the
 * store answered 503 for every call.
 *
 * It is a fallback only: while the store answers, every call is checked against it (a change is in force
 * at once). The memory is used for a call only when that check fails as `unavailable`, only for reads
 * (GET, HEAD: nothing can be changed on a credential the store did not confirm), and only while the
 * reading is at most `maxAgeMs` old. So a session ended or an account disabled (both writes to the store)
 * is refused by every node that reads the store at once, and by one that cannot at most `maxAgeMs` after
 * the change: its last reading is older than the change, so it stops being used `maxAgeMs` after it at
 * the latest. Sign-in itself needs the store (the password hash, the TOTP code good once).
 */
export class OperatorMemory {
  private reading: Reading | null = null;
  private cancel: Cancel | null = null;
  private tail: Promise<unknown> = Promise.resolve();
  /** Readings are numbered as they start; one numbered below this (begun before the last change made through this node) is never used. */
  private readsStarted = 0;
  private firstUsable = 0;
  /** Readings asked for and not yet done. */
  private pending = 0;

  constructor(
    private readonly deps: {
      /** Every operator account record, and the operators' portal accounts (participantDipId null). */
      read(): Promise<{ accounts: OperatorAccount[]; people: PortalAccount[] }>;
      clock: Clock;
      /** 0: never used (every call needs the store). */
      maxAgeMs: number;
      logger: Logger;
    },
  ) {}

  /** Reads now and every OPERATOR_MEMORY_REFRESH_MS. */
  start(): void {
    if (this.deps.maxAgeMs <= 0) return;
    void this.refresh();
    this.cancel = this.deps.clock.every(OPERATOR_MEMORY_REFRESH_MS, () => {
      if (this.pending === 0) void this.refresh();
    });
  }

  stop(): void {
    this.cancel?.();
    this.cancel = null;
  }

  /**
   * Reads the accounts again, after any reading under way: one asked for after a change (a sign-out, an
   * account disabled) must not be answered by a reading that started before it. A failed reading keeps
   * the one before.
   */
  refresh(): Promise<boolean> {
    if (this.deps.maxAgeMs <= 0) return Promise.resolve(false);
    this.pending += 1;
    const done = this.tail.then(async () => {
      const at = this.deps.clock.now();
      const number = this.readsStarted++;
      try {
        const { accounts, people } = await this.deps.read();
        this.reading = { at, number, accounts, people: new Map(people.map((p) => [p.username, { sessionEpoch: p.sessionEpoch, disabled: p.disabled, participantDipId: p.participantDipId }])) };
        return true;
      } catch (err) {
        // The store is down: the reading kept ages until it is no longer used (maxAgeMs).
        this.deps.logger.warn({ err }, 'operator accounts could not be read; the last reading is kept for reads of the operator API while it is young enough');
        return false;
      } finally {
        this.pending -= 1;
      }
    });
    this.tail = done;
    return done;
  }

  /**
   * After a change made through this node (a sign-out, an account disabled, a new token): no reading made
   * before now is used again (it could still let in what the change ended, were the store lost just
   * after), and a new one is waited for at most `withinMs` (a store cut off just after a change must not
   * hold the change's answer for a query's timeout). Until a new reading succeeds, reads need the store.
   */
  refreshed(withinMs: number): Promise<void> {
    this.firstUsable = this.readsStarted;
    return new Promise((resolve) => {
      const cancel = this.deps.clock.after(withinMs, resolve);
      void this.refresh().then(() => {
        cancel();
        resolve();
      });
    });
  }

  /** When the reading in use was made (null: none, or too old to be used). */
  readAt(): number | null {
    return this.fresh()?.at ?? null;
  }

  /** The person behind session claims (signature and expiry already checked), as of the reading. */
  session(claims: SessionClaims): OperatorIdentity | undefined {
    const r = this.fresh();
    const person = r?.people.get(claims.username);
    if (!r || !person || person.disabled || person.participantDipId !== null || person.sessionEpoch !== claims.epoch) return undefined;
    return personNamed(r.accounts, claims.username);
  }

  /** The enabled automation account behind a token, as of the reading. */
  automation(token: string): OperatorIdentity | undefined {
    const r = this.fresh();
    return r ? automationAccountFor(r.accounts, token) : undefined;
  }

  /** An enabled account by name (the portals' in-process calls name theirs), as of the reading. */
  named(name: unknown): OperatorIdentity | undefined {
    const r = this.fresh();
    return r ? enabledOperatorNamed(r.accounts, name) : undefined;
  }

  /** Whether an admin account exists, as of the reading; undefined when there is no reading young enough. */
  adminExists(): boolean | undefined {
    const r = this.fresh();
    return r ? hasAdmin(r.accounts) : undefined;
  }

  private fresh(): Reading | null {
    const r = this.reading;
    return r && r.number >= this.firstUsable && this.deps.clock.now() - r.at <= this.deps.maxAgeMs ? r : null;
  }
}
