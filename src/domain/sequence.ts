/**
 * Queue positions on the wire (an OpenDIP extension): every webhook call and pull answer names the
 * positions of its messages, in body order, as "first-last", so a recipient can spot duplicates and gaps.
 */
export const SEQUENCE_HEADER = 'x-opendip-sequence';
/**
 * The position the queue is settled up to (delivered, acknowledged, or set aside by the DIP: stale, refused,
 * dead-lettered, its sender told), on every pull answer and webhook call. A call or answer may start above
 * the recipient's last position + 1 when the DIP set messages aside meanwhile: the positions up to this one
 * were settled, not lost. Only a first position above max(last, acknowledged) + 1 is a gap (gapBefore).
 */
export const ACKNOWLEDGED_HEADER = 'x-opendip-acknowledged';

/**
 * The positions a recipient that processed up to `last` missed, given a call or answer starting at `first`
 * with X-OpenDIP-Acknowledged `acknowledged` (null when absent): none (null) when the positions between
 * were settled by the DIP; else the first and last missed.
 */
export function gapBefore(last: number, first: number, acknowledged: number | null): { first: number; last: number } | null {
  const from = Math.max(last, acknowledged ?? 0) + 1;
  return first > from ? { first: from, last: first - 1 } : null;
}

export function formatSequence(first: number, last: number): string {
  return `${first}-${last}`;
}

export function parseSequence(value: string | undefined): { first: number; last: number } | null {
  const m = /^(\d+)-(\d+)$/.exec(value ?? '');
  return m ? { first: Number(m[1]), last: Number(m[2]) } : null;
}
