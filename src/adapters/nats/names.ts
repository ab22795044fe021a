import type { QueueRef } from '../../ports/message-log.js';

/**
 * A name as one token of a NATS subject or KV key: DIP IDs and channel IDs pass as they are; anything
 * else (a dot would split a token) is hex-encoded behind '=', which neither can contain.
 */
export const token = (name: string): string => (/^[\w-]+$/.test(name) ? name : `=${Buffer.from(name, 'utf8').toString('hex')}`);

export const untoken = (t: string): string => (t.startsWith('=') ? Buffer.from(t.slice(1), 'hex').toString('utf8') : t);

export const queueToken = (q: QueueRef): string => `${token(q.recipientDipId)}.${token(q.channel)}`;

export function queueOfToken(t: string): QueueRef | undefined {
  const [r, c, ...rest] = t.split('.');
  return r && c && rest.length === 0 ? { recipientDipId: untoken(r), channel: untoken(c) } : undefined;
}
