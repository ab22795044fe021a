import { describe, expect, it } from 'vitest';
import { alarmAction } from '../src/pipeline/alarm-actions.js';
import { unreachedHolderAlarms } from '../src/pipeline/alarm-sources.js';
import { Alarms } from '../src/pipeline/alarms.js';
import { UnreachedHolders } from '../src/pipeline/unreached-holders.js';
import type { AlarmChannel, AlarmNotice, AlarmSubscription } from '../src/ports/alarms.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';

/**
 * The `mpan-holder-unreached` alarm: an accepted message whose MPAN lookup named a holder who cannot
 * receive (MSG1033, MSG1034) was told to the sender, counted and logged, but reached nobody on call.
 */
describe('the mpan-holder-unreached alarm', () => {
  const quietMs = 60 * 60_000;
  const setUp = () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const notices: AlarmNotice[] = [];
    const channel: AlarmChannel = { email: async () => undefined, webhook: async (_url, n) => void notices.push(n as AlarmNotice), close: async () => undefined };
    const ops: AlarmSubscription = { id: 'ops', owner: 'operator', rules: ['mpan-holder-unreached'], email: null, webhookUrl: 'https://ops.example/alarms', createdAt: 1 };
    const participant: AlarmSubscription = { ...ops, id: 'sds', owner: '2000000001', webhookUrl: 'https://sds.example/alarms' };
    const holders = new UnreachedHolders(clock, quietMs);
    const alarms = new Alarms([unreachedHolderAlarms(() => holders.recent(), quietMs)], { list: async () => [ops, participant] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 100 }, clock, quietLogger);
    return { clock, notices, holders, alarms };
  };

  it('is raised naming each holder, slot and code seen, and resolved only after a quiet period', async () => {
    const { clock, notices, holders, alarms } = setUp();
    await alarms.evaluate();
    expect(alarms.current()).toEqual([]);
    const raisedAt = clock.now();
    holders.record('IF-021', [{ holder: '1000000009', slot: 'SUP', code: 'MSG1033' }]);
    await clock.advance(60_000);
    holders.record('IF-021', [{ holder: '1000000009', slot: 'SUP', code: 'MSG1033' }, { holder: '3000000001', slot: 'LDSO', code: 'MSG1034' }]);
    await alarms.evaluate();
    expect(alarms.current()).toEqual([
      {
        key: 'mpan-holder-unreached',
        rule: 'mpan-holder-unreached',
        participant: null,
        summary:
          "holders the MPAN lookup names got no copy of accepted messages in the last 60 min: 3000000001 as LDSO on IF-021 (MSG1034, without the slot's role; 1 message); 1000000009 as SUP on IF-021 (MSG1033, not a registered participant; 2 messages)",
        since: raisedAt,
      },
    ]);
    // Operators only, and told what to do.
    expect(notices.map((n) => `${n.kind} ${n.condition.rule}`)).toEqual(['raised mpan-holder-unreached']);
    expect(alarmAction({ rule: 'mpan-holder-unreached' }, 'operator')).toMatch(/^register the participant \/ give it the role, or correct the MPAN lookup feed/);
    expect(alarms.current('2000000001')).toEqual([]);

    // Still held just short of the quiet period after the last one (no flapping between sightings)…
    await clock.advance(quietMs - 1);
    await alarms.evaluate();
    expect(alarms.current()).toHaveLength(1);
    expect(alarms.current()[0]!.summary).toMatch(/^holders the MPAN lookup names got no copy of accepted messages in the last 60 min: 3000000001 as LDSO/);
    // …and resolved once none was left out for the whole period.
    await clock.advance(1);
    await alarms.evaluate();
    expect(alarms.current()).toEqual([]);
    expect(notices.map((n) => n.kind)).toEqual(['raised', 'resolved']);

    // A new run is a new alarm, since its own first message.
    const again = clock.now();
    holders.record('IF-021', [{ holder: '1000000009', slot: 'SUP', code: 'MSG1033' }]);
    await alarms.evaluate();
    expect(alarms.current()[0]).toMatchObject({ since: again, summary: expect.stringContaining('1000000009 as SUP on IF-021 (MSG1033, not a registered participant; 1 message)') });
  });

  it('names ten holders and counts the rest; keeps at most 1,000 of them', async () => {
    const { holders, alarms } = setUp();
    holders.record('IF-021', Array.from({ length: 1005 }, (_, i) => ({ holder: String(1000000000 + i), slot: 'SUP', code: 'MSG1033' })));
    expect(holders.recent()).toHaveLength(1000);
    // The most recently seen first: the first five were forgotten.
    expect(holders.recent()[0]!.holder).toBe('1000001004');
    expect(holders.recent().at(-1)!.holder).toBe('1000000005');
    await alarms.evaluate();
    const summary = alarms.current()[0]!.summary;
    expect(summary).toMatch(/^holders the MPAN lookup names got no copy of accepted messages in the last 60 min: 1000001004 as SUP/);
    expect(summary).toMatch(/; 1000000995 as SUP on IF-021 \(MSG1033, not a registered participant; 1 message\), and 990 more$/);
  });

  it('is keyed by node in a cluster', async () => {
    const clock = new FakeClock();
    const holders = new UnreachedHolders(clock, quietMs);
    holders.record('IF-021', [{ holder: '1000000009', slot: 'SUP', code: 'MSG1033' }]);
    const [c] = await unreachedHolderAlarms(() => holders.recent(), quietMs, 'node-a')();
    expect(c).toMatchObject({ key: 'mpan-holder-unreached:node-a', summary: expect.stringContaining('accepted messages on node node-a in the last 60 min') });
  });
});
