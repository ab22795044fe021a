import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteAlarmSubscriptions } from '../src/adapters/sqlite/alarm-subscriptions.js';
import { Alarms, type ConditionSource } from '../src/pipeline/alarms.js';
import type { AlarmChannel, AlarmCondition, AlarmSubscription } from '../src/ports/alarms.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';

// An operator's review found three RAISED e-mails for one expiring certificate (one per restart, each with
// a new `since`), RESOLVED e-mails for alarms the mailbox was never told of (subscribed after the raise),
// and subjects that were the whole 300-character summary.
describe('alarm notices across a restart, and to whom a RESOLVED goes', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  const summary = `the DIP's TLS certificate expires in 12 days ${'(renew it with dip pki renew) '.repeat(8)}`.slice(0, 300);
  const expiring = (since: number): AlarmCondition => ({ key: 'certificate-expiring:tls', rule: 'certificate-expiring', participant: null, summary, since });

  function dip() {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-announced-'));
    dirs.push(dir);
    const clock = new FakeClock(Date.UTC(2026, 11, 1, 9, 0, 0));
    const mails: Array<{ to: string; subject: string; text: string }> = [];
    const channel: AlarmChannel = { email: async (to, subject, text) => void mails.push({ to, subject, text }), webhook: async () => undefined, close: async () => undefined };
    const state = { holds: true, failing: false };
    // A certificate source sets `since` to when it reads it (as the DIP's does): only the alarm keeps the first.
    const source: ConditionSource = () => {
      if (state.failing) throw new Error('unreadable');
      return state.holds ? [expiring(clock.now())] : [];
    };
    let store = new SqliteAlarmSubscriptions(join(dir, 'alarms.db'));
    const start = (): Alarms => new Alarms([source], store, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 100 }, clock, quietLogger, undefined, undefined, { store, node: '' });
    const restart = async (): Promise<Alarms> => {
      await store.close();
      store = new SqliteAlarmSubscriptions(join(dir, 'alarms.db'));
      return start();
    };
    const subscribe = (id: string, email: string): Promise<void> => store.put({ id, owner: 'operator', rules: ['certificate-expiring'], email, webhookUrl: null, createdAt: clock.now() } satisfies AlarmSubscription);
    return { clock, mails, state, start, restart, subscribe, close: () => store.close() };
  }

  it('an alarm still raised across restarts keeps its `since` and is announced once; one resolved while the DIP was down is told RESOLVED', async () => {
    const d = dip();
    await d.subscribe('s1', 'ops@example.net');
    await d.clock.advance(1000);
    const first = d.start();
    await first.evaluate();
    const since = first.current()[0]!.since;
    for (let i = 0; i < 2; i++) {
      await d.clock.advance(3_600_000);
      const again = await d.restart();
      await again.evaluate();
      expect(again.current().map((c) => c.since)).toEqual([since]);
    }
    expect(d.mails.map((m) => m.subject)).toEqual(['[DIP alarm RAISED] certificate-expiring (warning): the DIP']);
    d.state.holds = false;
    await d.clock.advance(3_600_000);
    const later = await d.restart();
    await later.evaluate();
    expect(d.mails.map((m) => m.subject)).toEqual(['[DIP alarm RAISED] certificate-expiring (warning): the DIP', '[DIP alarm RESOLVED] certificate-expiring (warning): the DIP']);
    await d.close();
  });

  it("keeps an alarm announced before a restart while its source cannot answer yet, rather than resolving it", async () => {
    const d = dip();
    await d.subscribe('s1', 'ops@example.net');
    await d.start().evaluate();
    d.state.failing = true;
    const again = await d.restart();
    await again.evaluate();
    expect(again.current().map((c) => c.key)).toEqual(['certificate-expiring:tls']);
    expect(d.mails).toHaveLength(1);
    d.state.failing = false;
    await again.evaluate();
    expect(d.mails).toHaveLength(1);
    await d.close();
  });

  it('sends a RESOLVED only to the subscriptions that were told RAISED', async () => {
    const d = dip();
    await d.subscribe('s1', 'early@example.net');
    const alarms = d.start();
    await alarms.evaluate();
    await d.clock.advance(60_000);
    await d.subscribe('s2', 'late@example.net');
    await alarms.evaluate();
    d.state.holds = false;
    await d.clock.advance(60_000);
    await alarms.evaluate();
    expect(d.mails.map((m) => `${m.to} ${m.subject.split(']')[0]}]`)).toEqual(['early@example.net [DIP alarm RAISED]', 'early@example.net [DIP alarm RESOLVED]']);
    await d.close();
  });

  it('puts the summary in the body and a short subject (rule, severity, whom it concerns)', async () => {
    const d = dip();
    await d.subscribe('s1', 'ops@example.net');
    await d.start().evaluate();
    expect(d.mails[0]!.subject.length).toBeLessThan(80);
    expect(d.mails[0]!.text.split('\n')[0]).toBe(`Alarm raised: ${summary}`);
    await d.close();
  });
});
