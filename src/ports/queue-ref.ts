/** A recipient's FIFO queue: one per (recipient DIP ID, channel), as webhooks are registered per channel. */
export interface QueueRef {
  recipientDipId: string;
  channel: string;
}

/** A queue as a map key: the NUL cannot occur in a DIP ID or a channel ID. */
export const queueKey = (q: QueueRef): string => `${q.recipientDipId}\u0000${q.channel}`;
