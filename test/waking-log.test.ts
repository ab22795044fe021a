import { describe, expect, it } from 'vitest';
import { queuesOf, wakingLog } from '../src/pipeline/delivery.js';
import type { AcceptedBatch, AcceptedMessage, AppendOutcome, QueueRef } from '../src/ports/message-log.js';

const message = (channel: string, recipients: string[]): AcceptedMessage => ({
  transactionId: `t-${channel}-${recipients.join('-')}`,
  channel,
  eventCode: 'E',
  senderDipId: '2000000001',
  senderRole: 'SDS',
  senderUniqueReference: null,
  correlationId: null,
  mpan: null,
  receivedAt: 0,
  outbound: '{}',
  recipients,
});

const batch = (messages: AcceptedMessage[]): AcceptedBatch => ({
  channel: messages[0]!.channel,
  senderDipId: '2000000001',
  receivedAt: 0,
  rawRequest: Buffer.from('[]'),
  signatureHeaders: '{}',
  messages,
});

/** A log whose append settles when the test says (as the group commit does once the batch is durable). */
function heldLog() {
  const appends: Array<{ resolve(o: AppendOutcome): void; reject(e: Error): void }> = [];
  return {
    appends,
    append: (_b: AcceptedBatch) => new Promise<AppendOutcome>((resolve, reject) => appends.push({ resolve, reject })),
  };
}

describe('queuesOf', () => {
  it('names each recipient queue once, by recipient and channel of each message', () => {
    const b = batch([message('IF-021', ['1000000001', '4000000001']), message('IF-021', ['1000000001']), message('STATUS', ['1000000001'])]);
    expect(queuesOf(b)).toEqual([
      { recipientDipId: '1000000001', channel: 'IF-021' },
      { recipientDipId: '4000000001', channel: 'IF-021' },
      { recipientDipId: '1000000001', channel: 'STATUS' },
    ]);
  });
});

describe('wakingLog', () => {
  it('wakes the queues of an accepted batch once the append is durable, not before', async () => {
    const log = heldLog();
    const woken: QueueRef[][] = [];
    const waking = wakingLog(log, (q) => woken.push(q));
    const appended = waking.append(batch([message('IF-021', ['1000000001', '3000000001'])]));
    await Promise.resolve();
    expect(woken).toEqual([]);
    log.appends[0]!.resolve({ ok: true });
    await expect(appended).resolves.toEqual({ ok: true });
    expect(woken).toEqual([
      [
        { recipientDipId: '1000000001', channel: 'IF-021' },
        { recipientDipId: '3000000001', channel: 'IF-021' },
      ],
    ]);
  });

  it('wakes nobody for a batch refused as a duplicate or one the store failed to write', async () => {
    const log = heldLog();
    const woken: QueueRef[][] = [];
    const waking = wakingLog(log, (q) => woken.push(q));
    const duplicate = waking.append(batch([message('IF-021', ['1000000001'])]));
    const failed = waking.append(batch([message('IF-021', ['1000000001'])]));
    log.appends[0]!.resolve({ ok: false, duplicates: ['ref-1'] });
    log.appends[1]!.reject(new Error('disk sync failed'));
    await expect(duplicate).resolves.toEqual({ ok: false, duplicates: ['ref-1'] });
    await expect(failed).rejects.toThrow('disk sync failed');
    expect(woken).toEqual([]);
  });
});
