import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ContinuationTokens, UUID_SYNTAX } from '../src/security/continuation-token.js';

/** Replay continuation tokens: the published syntax (a UUID), stateless, unforgeable, bound to their request. */
describe('replay continuation tokens', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'opendip-token-'));
  const keyFile = join(dataDir, 'replay-token.key');
  const node1 = ContinuationTokens.fromFile(keyFile);
  const sup = { recipientDipId: '1000000001', channel: 'IF-021' };
  const filter = { fromMs: 0, toMs: 4_102_444_800_000, eventCode: null, mpan: null, transactionIds: null };

  it('are UUIDs (version 8, RFC 9562 variant) that carry the position back', () => {
    for (const seq of [0, 1, 1003, 2 ** 48 - 1]) {
      const token = node1.issue(sup, filter, seq);
      expect(token).toMatch(UUID_SYNTAX);
      expect(token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(node1.read(sup, filter, token)).toEqual({ afterSeq: seq });
      // UUIDs are compared without regard to case (RFC 9562 4).
      expect(node1.read(sup, filter, token.toUpperCase())).toEqual({ afterSeq: seq });
    }
    expect(() => node1.issue(sup, filter, 2 ** 48)).toThrow(/does not fit/);
  });

  it('are accepted by another node sharing the data directory, and by no DIP with another key', () => {
    const token = node1.issue(sup, filter, 1003);
    expect(ContinuationTokens.fromFile(keyFile).read(sup, filter, token)).toEqual({ afterSeq: 1003 });
    const elsewhere = ContinuationTokens.fromFile(join(mkdtempSync(join(tmpdir(), 'opendip-token-')), 'replay-token.key'));
    expect(elsewhere.read(sup, filter, token)).toEqual({ refused: 'not-issued' });
  });

  it('are refused for another recipient, channel or filter, and when any part is changed', () => {
    const token = node1.issue(sup, filter, 1003);
    expect(node1.read({ ...sup, recipientDipId: '1000000002' }, filter, token)).toEqual({ refused: 'not-issued' });
    expect(node1.read({ ...sup, channel: 'IF-022' }, filter, token)).toEqual({ refused: 'not-issued' });
    expect(node1.read(sup, { ...filter, mpan: '1234567890123' }, token)).toEqual({ refused: 'not-issued' });
    // Another position with the same authenticator: the position cannot be moved.
    const moved = `${token.slice(0, 12)}${token[12] === '0' ? '1' : '0'}${token.slice(13)}`;
    expect(node1.read(sup, filter, moved)).toEqual({ refused: 'not-issued' });
    // Each digit of the authenticator counts.
    for (const at of [15, 16, 21, 35]) {
      const changed = `${token.slice(0, at)}${token[at] === '0' ? '1' : '0'}${token.slice(at + 1)}`;
      expect(node1.read(sup, filter, changed), changed).toEqual({ refused: 'not-issued' });
    }
  });

  it('refuse anything that is not a UUID, the earlier form among them', () => {
    for (const given of ['1003.ClRjXKoamvuNuPm8', '', 'not-a-uuid', '00000000000000000000000000000000', `${node1.issue(sup, filter, 1)}, ${node1.issue(sup, filter, 1)}`, `{${node1.issue(sup, filter, 1)}}`]) {
      expect(node1.read(sup, filter, given), given).toEqual({ refused: 'not-a-uuid' });
    }
  });
});
