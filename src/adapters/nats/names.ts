import type { QueueRef } from '../../ports/message-log.js';

/**
 * A name as one token of a NATS subject or KV key: DIP IDs and channel IDs pass as they are; anything
 * else (a dot would split a token) is hex-encoded behind '=', which neither can contain.
 */
export const token = (name: string): string => (/^[\w-]+$/.test(name) ? name : `=${Buffer.from(name, 'utf8').toString('hex')}`);

export const queueToken = (q: QueueRef): string => `${token(q.recipientDipId)}.${token(q.channel)}`;

