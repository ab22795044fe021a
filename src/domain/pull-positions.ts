/**
 * The rules of pull consumption's positions (an OpenDIP extension): a pull hands out a queue's entries
 * after its acknowledged position, and an acknowledgement moves that position. A recipient may only
 * acknowledge what it was handed: a larger number would mark as delivered messages it never read.
 */

/** A queue's positions as the store keeps them. */
export interface PullPositions {
  /** Settled up to here: acknowledged by a pull, delivered to a webhook, or set aside (expired, dead-lettered). */
  ackedSeq: number;
  /** The last position any pull handed out (0 when none). */
  pulledSeq: number;
}

/**
 * The highest position an acknowledgement may name. The settled position counts too: a recipient that
 * took webhook deliveries before it pulled (or whose stale entries were set aside) has never pulled up
 * to it, and must not be blocked by the older pulledSeq.
 */
export function handedOut(p: PullPositions): number {
  return Math.max(p.pulledSeq, p.ackedSeq);
}

export type AckDecision =
  /** Moves the position to `sequence`: the messages after the settled position up to it are delivered. */
  | { kind: 'advance' }
  /** Already settled that far (a repeat, or another puller went further): nothing to do, not an error. */
  | { kind: 'unchanged'; help: string }
  /** Past what any pull handed out: refused, nothing moves. */
  | { kind: 'refused'; help: string };

/** What an acknowledgement of `sequence` does to a queue with these positions. */
export function judgeAck(p: PullPositions, sequence: number): AckDecision {
  if (sequence <= p.ackedSeq) return { kind: 'unchanged', help: `already acknowledged up to ${p.ackedSeq}: nothing changed` };
  const bound = handedOut(p);
  if (sequence > bound) {
    return {
      kind: 'refused',
      help: `sequence ${sequence} is past the last position a pull handed out (${bound}): acknowledge only what was pulled (acknowledged so far: ${p.ackedSeq})`,
    };
  }
  return { kind: 'advance' };
}

/**
 * The position to record after a pull that handed out entries up to `lastSeq` (undefined: none), or null
 * when it hands out nothing new (an empty pull, or the same range pulled again): no store write then.
 */
export function pulledMark(p: PullPositions, lastSeq: number | undefined): number | null {
  return lastSeq !== undefined && lastSeq > handedOut(p) ? lastSeq : null;
}
