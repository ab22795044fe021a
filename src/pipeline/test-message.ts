import { randomUUID } from 'node:crypto';
import { DIP_ROLE } from '../catalogue/roles.js';
import type { DipMessage } from '../domain/message.js';
import { stampWrapper } from '../domain/message.js';
import { dipDateTime } from '../domain/time.js';
import { newTransactionId } from '../domain/transaction-id.js';
import type { Clock } from '../ports/clock.js';
import type { MessageLog, QueueRef } from '../ports/message-log.js';
import type { Channel } from './channels.js';
import { dipMadeBatch } from './made-batch.js';

/** The event code a test message carries: no business event has it, so no recipient mistakes it for one. */
export const TEST_EVENT_CODE = 'OpenDIPTest';

/**
 * "Send a test message" (the user portal's webhook page): the DIP itself sends the recipient one message
 * on the channel, through the same road as any other: appended durably, queued, delivered to the webhook
 * with retries, archived for search, journey and replay. Its D0 wrapper is real; its payload says what
 * it is (event code OpenDIPTest, a CustomBlock with `test: true`), so the recipient's system can tell it
 * from business traffic.
 */
export async function sendTestMessage(
  deps: { log: Pick<MessageLog, 'append'>; notify(queues: QueueRef[]): void; clock: Clock; dipId: string; environment: string },
  recipientDipId: string,
  channel: Channel,
  requestedBy: string,
): Promise<{ transactionId: string }> {
  const now = new Date(deps.clock.now());
  const stamp = dipDateTime(now);
  const transactionId = newTransactionId(channel.interfaceId, deps.dipId.slice(0, 10), DIP_ROLE, now);
  const message: DipMessage = {
    payload: {
      CommonBlock: {
        S0: { interfaceID: channel.interfaceId, eventCode: TEST_EVENT_CODE, schemaVersion: channel.definition.schemaVersions[0] ?? null },
        S1: {
          environmentTag: deps.environment,
          senderUniqueReference: `TEST-${randomUUID()}`,
          senderTimestamp: stamp,
          senderDIPID: deps.dipId,
          senderRoleID: DIP_ROLE,
          senderCorrelationID: null,
          DIPConnectionProviderID: null,
        },
      },
      CustomBlock: { test: true, requestedBy, note: `A test message from the DIP to check ${recipientDipId}'s webhook for ${channel.interfaceId}; not a business event.` },
    },
  };
  const outbound = stampWrapper(message, {
    transactionId,
    transactionTimestamp: stamp,
    publicationId: channel.publicationId,
    initialCorrelationId: null,
    replayIndicator: false,
    primaryRecipients: [recipientDipId],
    secondaryRecipients: [],
    alwaysRecipients: [],
  });
  const text = JSON.stringify(outbound);
  const outcome = await deps.log.append(
    dipMadeBatch(
      { channel: channel.interfaceId, senderDipId: deps.dipId, senderRole: DIP_ROLE, at: now.getTime(), rawRequest: Buffer.from(JSON.stringify([message])), inForce: channel.securityPattern },
      [{ transactionId, eventCode: TEST_EVENT_CODE, correlationId: null, outbound: text, recipients: [recipientDipId] }],
    ),
  );
  if (!outcome.ok) throw new Error('a test message carries no sender reference and cannot be a duplicate');
  deps.notify([{ recipientDipId, channel: channel.interfaceId }]);
  return { transactionId };
}
