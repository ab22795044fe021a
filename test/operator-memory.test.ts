/**
 * The node's memory of the operator accounts (src/pipeline/operator-memory.ts), on an injected clock: what
 * it lets in is bounded by the reading's age, a reading asked for after a change is never answered by one
 * that started before it, and a change's answer waits for it a bounded time only.
 */
import { describe, expect, it } from 'vitest';
import { OperatorMemory, OPERATOR_MEMORY_REFRESH_MS } from '../src/pipeline/operator-memory.js';
import type { OperatorAccount } from '../src/pipeline/operators.js';
import type { PortalAccount } from '../src/ports/portal-accounts.js';
import { secretHash } from '../src/security/api-key.js';
import { FakeClock, settle } from './helpers/clocks.js';

const quiet = { info() {}, warn() {}, error() {} };
const account = (name: string, role: OperatorAccount['role'], extra: Partial<OperatorAccount> = {}): OperatorAccount => ({ name, role, tokenHash: null, disabled: false, createdAt: 0, createdBy: 'bootstrap', ...extra });
const person = (username: string, sessionEpoch: number, extra: Partial<PortalAccount> = {}): PortalAccount =>
  ({ username, participantDipId: null, admin: true, displayName: username, passwordHash: '', totpSecretSealed: null, lastTotpStep: 0, sessionEpoch, disabled: false, createdAt: 0, createdBy: 'x', ...extra });

function memory(maxAgeMs = 15 * 60_000) {
  const clock = new FakeClock();
  let accounts = [account('alice', 'admin'), account('monitoring', 'viewer', { automation: true, tokenHash: secretHash('dipop_t') })];
  let people = [person('alice', 3)];
  /** While set, readings wait for it (a slow or cut-off store). */
  let gate: Promise<void> | null = null;
  let failing = false;
  const m = new OperatorMemory({
    read: async () => {
      const snapshot = { accounts, people };
      if (gate) await gate;
      if (failing) throw new Error('ECONNREFUSED');
      return snapshot;
    },
    clock,
    maxAgeMs,
    logger: quiet,
  });
  return {
    clock,
    m,
    set: (a: OperatorAccount[], p: PortalAccount[]) => {
      accounts = a;
      people = p;
    },
    hold: () => {
      let open!: () => void;
      gate = new Promise((r) => (open = r));
      return () => {
        gate = null;
        open();
      };
    },
    fail: (f: boolean) => void (failing = f),
  };
}

const claims = (username: string, epoch: number) => ({ username, epoch, expiresAt: Number.MAX_SAFE_INTEGER, csrf: '' });

describe('OperatorMemory', () => {
  it('answers from its reading for at most maxAgeMs after it was made, the store failing meanwhile', async () => {
    const { m, clock, fail } = memory();
    m.start();
    await settle();
    expect(m.session(claims('alice', 3))).toEqual({ name: 'alice', role: 'admin', actor: 'operator:alice', automation: false });
    expect(m.session(claims('alice', 2))).toBeUndefined(); // an epoch the account has left: signed out
    expect(m.automation('dipop_t')).toMatchObject({ name: 'monitoring', role: 'viewer' });
    expect(m.adminExists()).toBe(true);
    fail(true);
    // Readings fail from now on: the last one ages, and is used no more once older than maxAgeMs.
    await clock.advance(15 * 60_000);
    expect(m.session(claims('alice', 3))).toBeDefined();
    await clock.advance(1);
    expect([m.session(claims('alice', 3)), m.automation('dipop_t'), m.adminExists(), m.readAt()]).toEqual([undefined, undefined, undefined, null]);
    fail(false);
    await clock.advance(OPERATOR_MEMORY_REFRESH_MS);
    expect(m.session(claims('alice', 3))).toBeDefined();
    m.stop();
  });

  it('a reading asked for after a change is made after the one under way, never answered by it', async () => {
    const { m, set, hold } = memory();
    const open = hold();
    const before = m.refresh(); // under way, with the accounts of before the change
    set([account('alice', 'admin', { disabled: true })], [person('alice', 4)]);
    const after = m.refresh();
    open();
    await before;
    await after;
    expect(m.session(claims('alice', 3))).toBeUndefined();
    expect(m.session(claims('alice', 4))).toBeUndefined(); // disabled
  });

  it('a change waits for its reading a bounded time only', async () => {
    const { m, clock, hold } = memory();
    const open = hold();
    let done = false;
    void m.refreshed(2_000).then(() => (done = true));
    await clock.advance(1_999);
    expect(done).toBe(false);
    await clock.advance(1);
    expect(done).toBe(true);
    open();
  });

  it('after a change made through this node, never uses a reading from before it, the store lost just after', async () => {
    const { m, set, fail } = memory();
    m.start();
    await settle();
    expect(m.session(claims('alice', 3))?.name).toBe('alice');
    // alice signs out (epoch 4 in the store); the store is lost before the reading that would show it.
    set([account('alice', 'admin')], [person('alice', 4)]);
    fail(true);
    await m.refreshed(2_000);
    expect(m.session(claims('alice', 3))).toBeUndefined();
    expect(m.readAt()).toBeNull();
    // The store back: a new reading is used again, with the change.
    fail(false);
    await m.refresh();
    expect([m.session(claims('alice', 3)), m.session(claims('alice', 4))?.name]).toEqual([undefined, 'alice']);
  });

  it('is off at 0: never read, never used', async () => {
    const { m } = memory(0);
    m.start();
    await m.refresh();
    expect([m.readAt(), m.session(claims('alice', 3))]).toEqual([null, undefined]);
  });
});
