import { describe, expect, it } from 'vitest';
import { addToRuns, setAsideEntries, setAsideHelp, setAsideUnseen, type SetAsideRun } from '../src/pipeline/set-aside-unseen.js';
import type { DeadLetter, DeadLetterQuery } from '../src/ports/dead-letters.js';

const queue = { recipientDipId: '1000000001', channel: 'IF-021' };
const letter = (seq: number, detail = 'stale: not delivered to 1000000001 within 1 days'): DeadLetter => ({
  queue, seq, messageId: seq, transactionId: `T${seq}`, senderDipId: '2000000001', senderUniqueReference: null, receivedAt: 0, reason: 'stale', status: null, detail, at: Date.UTC(2026, 11, 6), state: 'dead',
});

describe('the set-aside positions an acknowledgement names', () => {
  it('gathers consecutive positions set aside for one reason into one run, a gap or another reason starting the next', () => {
    const runs: SetAsideRun[] = [];
    [letter(1), letter(2), letter(3), letter(5), letter(6, 'refused: 400')].forEach((d) => addToRuns(runs, d));
    expect(runs.map((r) => [r.first.seq, r.last.seq, r.count])).toEqual([[1, 3, 3], [5, 5, 1], [6, 6, 1]]);
    expect(setAsideHelp('acknowledged up to 6', runs)).toBe('acknowledged up to 6; but 5 message(s) up to 6 were set aside by the DIP before this acknowledgement, not delivered (their senders were told so): positions 1-3, 5, 6, named in the entries that follow');
    expect(setAsideEntries(runs).map((e) => [e.transactionID, e.help?.split(' (')[0]])).toEqual([['T1', 'positions 1-3'], ['T5', 'position 5 was set aside at 2026-12-06T00:00:00+00:00'], ['T6', 'position 6 was set aside at 2026-12-06T00:00:00+00:00']]);
  });

  it('reads all of the range, page after page, however many', async () => {
    const stored = Array.from({ length: 1217 }, (_, i) => letter(i + 1)).filter((d) => d.seq <= 115 || d.seq > 135);
    const reads: DeadLetterQuery[] = [];
    const deadLetters = async (q: DeadLetterQuery): Promise<DeadLetter[]> => {
      reads.push(q);
      return stored.filter((d) => d.seq > q.after! && d.seq <= q.upTo!).slice(0, q.limit);
    };
    const runs = await setAsideUnseen({ deadLetters }, queue, 15, 1217);
    expect(runs.map((r) => [r.first.seq, r.last.seq, r.count])).toEqual([[16, 115, 100], [136, 1217, 1082]]);
    expect(reads.length).toBeGreaterThan(1);
    expect(await setAsideUnseen({ deadLetters }, queue, null, 1217)).toEqual([]);
  });
});
