import type { Participant } from '../domain/participant.js';
import type { Cancel } from './clock.js';

export interface Webhook {
  recipientDipId: string;
  channel: string;
  url: string;
  maxMessageCount: number;
  maxPayloadKb: number;
}

export interface RegisteredParticipant {
  participant: Participant;
  apiKeyHash: string;
}

/**
 * Participants and their webhooks, with a change feed: every DIP process (and node) learns of a change
 * made anywhere (another node, the CLI) without polling the whole registry.
 */
export interface RegistryStore {
  /** Registers or updates a participant. `apiKeyHash` null keeps the key it has (an update). */
  upsertParticipant(p: Participant, apiKeyHash: string | null): Promise<void>;
  participants(): Promise<RegisteredParticipant[]>;
  putWebhook(w: Webhook): Promise<void>;
  deleteWebhook(recipientDipId: string, channel: string): Promise<boolean>;
  webhooks(): Promise<Webhook[]>;
  /** A token that changes whenever anything here changes: a cheap check before a full reload. */
  version(): Promise<number>;
  /**
   * Calls `onChange` (at least once) after any participant or webhook changes, here or elsewhere. How soon
   * depends on the engine (a cheap version check on SQLite, LISTEN/NOTIFY on PostgreSQL).
   */
  watch(onChange: () => void): Cancel;
}
