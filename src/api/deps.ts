import type { DipConfig } from '../config.js';
import type { Channel } from '../pipeline/channels.js';
import type { Delivery } from '../pipeline/delivery.js';
import type { Ingest } from '../pipeline/ingest.js';
import type { Logger } from '../pipeline/logger.js';
import type { Registry } from '../pipeline/registry.js';
import type { Replay } from '../pipeline/replay.js';
import type { StatusMessages } from '../pipeline/status.js';
import type { MessageLog, QueueRef, WebhookRegistry } from '../ports/store.js';
import type { WebhookDestinations } from '../security/webhook-destinations.js';

/** What the HTTP routes need; wired once in app.ts. */
export interface ApiDeps {
  config: DipConfig;
  logger: Logger;
  ingest: Ingest;
  registry: Registry;
  webhooks: WebhookRegistry;
  delivery: Delivery;
  replay: Replay;
  status: StatusMessages;
  queues: Pick<MessageLog, 'queueState' | 'readQueue' | 'ack'>;
  /** The copy a recipient gets (obfuscation by role). */
  outboundFor(queue: QueueRef, outbound: string): string | Promise<string>;
  /** The DIP's public certificates: its CA, its signing certificate, and its encryption certificate (pattern 2). */
  certificates: { ca: string; signing: string; encryption: string };
  channel(id: string): Channel | undefined;
  /** Which callback URLs may be registered (outside DEV: none on internal networks). */
  destinations: Pick<WebhookDestinations, 'checkUrl'>;
}
