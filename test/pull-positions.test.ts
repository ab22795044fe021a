import { describe, expect, it } from 'vitest';
import { handedOut, judgeAck, pulledMark } from '../src/domain/pull-positions.js';

describe('pull positions (src/domain/pull-positions.ts)', () => {
  it('lets an acknowledgement move only over what a pull handed out', () => {
    const p = { ackedSeq: 2, pulledSeq: 5 };
    expect(judgeAck(p, 3)).toEqual({ kind: 'advance' });
    expect(judgeAck(p, 5)).toEqual({ kind: 'advance' });
    expect(judgeAck(p, 6)).toEqual({ kind: 'refused', help: 'sequence 6 is past the last position a pull handed out (5): acknowledge only what was pulled (acknowledged so far: 2)' });
    // Nothing pulled yet: only 0 (nothing changed) is acknowledgeable.
    expect(judgeAck({ ackedSeq: 0, pulledSeq: 0 }, 1).kind).toBe('refused');
  });

  it('answers an acknowledgement at or below the settled position with "nothing changed"', () => {
    const p = { ackedSeq: 4, pulledSeq: 4 };
    for (const sequence of [0, 3, 4]) expect(judgeAck(p, sequence)).toEqual({ kind: 'unchanged', help: 'already acknowledged up to 4: nothing changed' });
  });

  it('counts what webhook deliveries settled as handed out: a recipient back from a webhook is not blocked by an older pull', () => {
    const p = { ackedSeq: 9, pulledSeq: 3 };
    expect(handedOut(p)).toBe(9);
    expect(judgeAck(p, 9).kind).toBe('unchanged');
    expect(judgeAck(p, 10).kind).toBe('refused');
    expect(pulledMark(p, 12)).toBe(12);
  });

  it('asks for a store write only when a pull hands out something new', () => {
    const p = { ackedSeq: 2, pulledSeq: 5 };
    expect(pulledMark(p, undefined)).toBeNull(); // an empty pull
    expect(pulledMark(p, 5)).toBeNull(); // the same range again
    expect(pulledMark(p, 4)).toBeNull(); // a smaller page of it
    expect(pulledMark(p, 7)).toBe(7);
  });
});
