/** A recipient's FIFO queue: one per (recipient DIP ID, channel), as webhooks are registered per channel. */
export interface QueueRef {
  recipientDipId: string;
  channel: string;
}
