/**
 * The DIP's own status message (return to sender, spec 5.5.9) about a requeued copy that went stale or
 * was refused: its sender sent the original and never saw the copy's R- ID, so it is told about the
 * original, as a recipient's POST /statusmessage about a copy is (flow-features tests that one end to end).
 */
import { describe, expect, it } from 'vitest';
import { StatusMessages } from '../src/pipeline/status.js';
import type { TransactionParties } from '../src/ports/archive.js';
import { FakeClock } from './helpers/clocks.js';

const ORIGINAL = 'T-IF-021-2000000001-SDS-20261205-0000000000000001';
const COPY = 'R-IF-021-2000000001-SDS-20261205-0000000000000002';
const DIP_SENT = 'R-IF-016-0000000000-DIP-20261205-0000000000000003';

const parties: Record<string, TransactionParties> = {
  [ORIGINAL]: { senderDipId: '2000000001', channel: 'IF-021', recipients: ['1000000001'], senderUniqueReference: 'S-ref-1', correlationId: 'CI-1', replayOf: null },
  [COPY]: { senderDipId: '2000000001', channel: 'IF-021', recipients: ['1000000001'], senderUniqueReference: 'S-ref-1', correlationId: 'CI-1', replayOf: ORIGINAL },
  [DIP_SENT]: { senderDipId: '0000000000', channel: 'IF-016', recipients: ['1000000001'], senderUniqueReference: null, correlationId: null, replayOf: null },
};

function statusMessages(): StatusMessages {
  const log = { append: () => Promise.resolve({ ok: true as const }) };
  const archive = { transactionParties: (id: string) => Promise.resolve(parties[id]) };
  return new StatusMessages(log, archive, { dipId: '0000000000', maxClockSkewMs: 60_000, connectionProviderOf: () => null }, new FakeClock(Date.parse('2026-12-05T02:00:00Z')), { append: () => Promise.resolve(1) });
}

const entriesOf = (batch: Awaited<ReturnType<StatusMessages['fromDip']>>) => batch!.messages.map((m) => JSON.parse(m.outbound) as Record<string, unknown>);

describe("the DIP's status message about a requeued copy", () => {
  it('names the original transaction, with the copy at the head of the help, and goes to the original sender', async () => {
    const batch = await statusMessages().fromDip([{ transactionId: COPY, message: 'MSG1000 - Message Processing Failed', help: 'not delivered within 1440 min' }]);
    expect(batch!.messages.map((m) => m.recipients)).toEqual([['2000000001']]);
    expect(entriesOf(batch)).toEqual([
      expect.objectContaining({
        transactionID: ORIGINAL,
        senderUniqueReference: 'S-ref-1',
        correlationID: 'CI-1',
        recipientID: '2000000001',
        help: `about the replayed copy ${COPY} of ${ORIGINAL}: not delivered within 1440 min`,
      }),
    ]);
  });

  it('leaves a status message about an original as it was', async () => {
    const batch = await statusMessages().fromDip([{ transactionId: ORIGINAL, message: 'MSG1000 - Message Processing Failed', help: 'refused' }]);
    expect(entriesOf(batch)).toEqual([expect.objectContaining({ transactionID: ORIGINAL, correlationID: 'CI-1', help: 'refused' })]);
  });

  // It went to the DIP's own STATUS queue, which nothing reads, to go stale there: the dead letter is the report.
  it('raises none about a message the DIP sent itself (a recipient refused its IF-016 answer)', async () => {
    expect(await statusMessages().fromDip([{ transactionId: DIP_SENT, message: 'MSG1000 - Message Processing Failed', help: 'refused' }])).toBeUndefined();
  });
});
