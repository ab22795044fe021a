/**
 * A writer for test/checkpoints.test.ts: appends batches of large messages to the store at argv[2] as fast
 * as they are acknowledged, printing `ack <n>` once batch n is durable, until it is killed; or, given a
 * count in argv[3], that many batches, then closes the store and prints `closed`.
 */
import { systemClock } from '../../src/adapters/clock.js';
import { openSqliteBackend } from '../../src/adapters/sqlite/index.js';
import type { AcceptedMessage } from '../../src/ports/message-log.js';

const backend = openSqliteBackend(process.argv[2]!, { clock: systemClock });
const body = 'x'.repeat(16_000);
const batches = process.argv[3] === undefined ? Infinity : Number(process.argv[3]);
for (let n = 1; n <= batches; n++) {
  const messages = Array.from({ length: 10 }, (_, i): AcceptedMessage => ({
    transactionId: `T-IF-021-SDS0000001-SDS-20260101-${String(n * 10 + i).padStart(16, '0')}`,
    channel: 'IF-021',
    eventCode: 'ActivePower',
    senderDipId: 'SDS0000001',
    senderRole: 'SDS',
    senderUniqueReference: `ref-${n}-${i}`,
    correlationId: null,
    mpan: null,
    receivedAt: Date.now(),
    outbound: JSON.stringify({ n, i, body }),
    recipients: ['SUP0000001'],
  }));
  const outcome = await backend.log.append({ channel: 'IF-021', senderDipId: 'SDS0000001', receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}', messages });
  if (!outcome.ok) throw new Error(`batch ${n} refused`);
  process.stdout.write(`ack ${n}\n`);
}
await backend.close();
process.stdout.write('closed\n');
