import { describe, expect, it } from 'vitest';
import { ThrottledLog, type LogLine, type Occurrences } from '../src/logging/throttled-log.js';
import { FakeClock } from './helpers/clocks.js';

/**
 * ThrottledLog: the one rhythm of a warning whose cause repeats while it lasts (used by the NATS failure
 * logs, the MSG1035 always-participant warning and the MSG1033/MSG1034 unreached-holder warning).
 */
const recording = () => {
  const lines: Array<{ level: 'info' | 'warn'; obj: object; msg: string }> = [];
  return {
    lines,
    logger: {
      info: (obj: object, msg = '') => void lines.push({ level: 'info', obj, msg }),
      warn: (obj: object, msg = '') => void lines.push({ level: 'warn', obj, msg }),
      error() {},
    },
  };
};
/** A line that shows everything it was told. */
const said = (key: string) => (o: Occurrences): LogLine => [{ key, ...o }, `${key}: ${o.count}`];

describe('ThrottledLog', () => {
  it('logs a key when first met, then at most once per interval with the occurrences since, each key on its own', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const { lines, logger } = recording();
    const log = new ThrottledLog(clock, logger, 60_000);
    log.warn('a', 3, said('a'));
    expect(lines).toEqual([{ level: 'warn', obj: { key: 'a', count: 3, total: 3, since: start, at: start }, msg: 'a: 3' }]);
    for (let i = 0; i < 59; i++) {
      await clock.advance(1_000);
      log.warn('a', 2, said('a'));
    }
    log.warn('b', 1, said('b'));
    expect(lines.map((l) => l.msg), 'a: once in its first minute; b: its own key').toEqual(['a: 3', 'b: 1']);
    await clock.advance(1_000);
    log.warn('a', 1, said('a'));
    expect(lines[2]).toEqual({ level: 'warn', obj: { key: 'a', count: 59 * 2 + 1, total: 3 + 59 * 2 + 1, since: start, previousAt: start, at: start + 60_000 }, msg: 'a: 119' });
    log.warn('a', 1, said('a'));
    expect(lines).toHaveLength(3);
  });

  it('logs the end of a cause once, with all its occurrences, and the next occurrence is a first again', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const { lines, logger } = recording();
    const log = new ThrottledLog(clock, logger, 60_000);
    const ended = (o: Pick<Occurrences, 'total' | 'since' | 'at'>): LogLine => [o, 'ended'];
    log.ended('a', ended);
    expect(lines, 'nothing had occurred').toEqual([]);
    log.warn('a', 1, said('a'));
    await clock.advance(5_000);
    log.warn('a', 1, said('a'));
    log.ended('a', ended);
    log.ended('a', ended);
    expect(lines.slice(1)).toEqual([{ level: 'info', obj: { total: 2, since: start, at: start + 5_000 }, msg: 'ended' }]);
    log.warn('a', 1, said('a'));
    expect(lines[2]).toMatchObject({ level: 'warn', obj: { count: 1, total: 1, since: start + 5_000 }, msg: 'a: 1' });
  });

  it('takes the wall clock stepping back as a line due, not as an hour of silence', () => {
    let now = Date.UTC(2026, 0, 1);
    const { lines, logger } = recording();
    const log = new ThrottledLog({ now: () => now }, logger, 60_000);
    log.warn('a', 1, said('a'));
    now -= 3_600_000;
    log.warn('a', 1, said('a'));
    expect(lines.map((l) => l.msg)).toEqual(['a: 1', 'a: 1']);
    now += 59_000;
    log.warn('a', 1, said('a'));
    expect(lines, 'then the interval again, from the step').toHaveLength(2);
    now += 1_000;
    log.warn('a', 1, said('a'));
    expect(lines).toHaveLength(3);
  });

  it('keeps a bounded number of keys: the least recently met is forgotten, and logged as new when met again', () => {
    // Some keys are named by what arrives (an MPAN lookup feed's holders): the map must not grow with them.
    const { lines, logger } = recording();
    const log = new ThrottledLog(new FakeClock(), logger, 60_000, 2);
    for (const key of ['a', 'b', 'a', 'c', 'a', 'b']) log.warn(key, 1, said(key));
    expect(lines.map((l) => l.msg)).toEqual(['a: 1', 'b: 1', 'c: 1', 'b: 1']);
  });
});
