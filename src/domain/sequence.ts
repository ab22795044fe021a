/**
 * Queue positions on the wire (an OpenDIP extension): every webhook call and pull answer names the
 * positions of its messages, in body order, as "first-last", so a recipient can spot duplicates and gaps.
 */
export const SEQUENCE_HEADER = 'x-opendip-sequence';

export function formatSequence(first: number, last: number): string {
  return `${first}-${last}`;
}

export function parseSequence(value: string | undefined): { first: number; last: number } | null {
  const m = /^(\d+)-(\d+)$/.exec(value ?? '');
  return m ? { first: Number(m[1]), last: Number(m[2]) } : null;
}
