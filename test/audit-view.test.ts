import { describe, expect, it } from 'vitest';
import { detailedAudit } from '../src/portal/audit-view.js';
import type { TracedMessage } from '../src/ports/traces.js';

describe('the detailed audit: what goes back to the sender of a dead-lettered copy', () => {
  const DIP = '0000000000';
  const message = (over: Partial<TracedMessage>): TracedMessage => ({
    transactionId: 'T1',
    channel: 'IF-001',
    eventCode: 'E',
    sender: '1000000001',
    senderRole: 'SDS',
    senderUniqueReference: null,
    correlationId: null,
    receivedAt: 0,
    replayOf: null,
    deliveries: [{ recipient: '1000000002', seq: 1, state: 'dead', deliveredAt: null, firstAttemptAt: 1, attempts: [], deadLetter: { reason: 'rejected', status: 400, detail: 'no', at: 2 } }],
    ...over,
  });
  const returned = (m: TracedMessage) => detailedAudit(m, null, '/x', null, DIP).text.match(/<tr><th scope="row">1000000002<\/th>.*<\/tr>/)![0];

  it("says the DIP returns a status message to a participant's message's sender", () => {
    expect(returned(message({}))).toContain('the DIP returns a status message to 1000000001');
  });

  it('claims none for a status message (the DIP reports no status about a status)', () => {
    const row = returned(message({ channel: 'STATUS', senderRole: 'STS' }));
    expect(row).not.toContain('status message to');
    expect(row).toContain('none: no status message about a status message');
  });

  it('claims none for a message the DIP sent itself (its dead letter is the operator report)', () => {
    const row = returned(message({ sender: DIP, senderRole: 'DIP' }));
    expect(row).not.toContain('status message to');
    expect(row).toContain('none: sent by the DIP');
  });
});
