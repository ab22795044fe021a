import type { Participant } from '../domain/participant.js';
import type { Cancel } from './clock.js';
import type { JournalEntry } from './operator-journal.js';

export interface Webhook {
  recipientDipId: string;
  channel: string;
  url: string;
  maxMessageCount: number;
  maxPayloadKb: number;
  /**
   * The DIP ID whose call registered it: the recipient itself, or the DIP Connection Provider acting for
   * it (its webhooks go with its nomination). Null: registered before OpenDIP recorded who did.
   */
  registeredBy: string | null;
}

/**
 * A versioned document kept beside the participants (participant profiles, channel settings, operator
 * accounts, the central register's entries): every put is a new version, older versions stay (history,
 * roll back), and the registry's change feed covers them, so every node sees a change as it sees a
 * participant's.
 */
export interface StoredRecord {
  kind: string;
  key: string;
  /** 1 for the first version of (kind, key). */
  version: number;
  doc: unknown;
  /** Epoch ms. */
  at: number;
  /** Who made this version (an operator's name, `register`, a participant's DIP ID). */
  by: string;
}

/** Another writer made a version first: re-read and decide again. */
export class RecordConflictError extends Error {
  constructor(readonly kind: string, readonly key: string, readonly expected: number) {
    super(`${kind} ${key} changed meanwhile (it is no longer at version ${expected}): read it again and retry`);
    this.name = 'RecordConflictError';
  }
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
  /**
   * Registers a new participant only: false, writing nothing, when its DIP ID is registered already (a
   * double-submitted form, or another node's stale registry, must not re-register it under a new key).
   */
  insertParticipant(p: Participant, apiKeyHash: string): Promise<boolean>;
  participants(): Promise<RegisteredParticipant[]>;
  /**
   * Sets a participant's DIP Connection Provider to `next` only while it is `expected` (a compare-and-set of
   * that one column; nothing else of the row is written): false, writing nothing, when it is not (another
   * writer changed the nomination meanwhile) or the participant is not registered.
   */
  setConnectionProvider(dipId: string, expected: string | null, next: string | null): Promise<boolean>;
  /**
   * Sets a participant's roles to `next` only while they are `expected` (as read, in that order): a
   * compare-and-set of that one column, as setConnectionProvider. False, writing nothing, when they are not.
   */
  setRoles(dipId: string, expected: string[], next: string[]): Promise<boolean>;
  /**
   * Replaces a participant's certificate (and the one kept for a rotation's overlap) only while the one
   * registered is `expectedFingerprint`; nothing else of the row is written. False, writing nothing, when
   * another rotation (or a re-registration) came first or the participant is not registered.
   */
  setCertificate(dipId: string, expectedFingerprint: string, next: Pick<Participant, 'certificatePem' | 'certificateFingerprint' | 'previous'>): Promise<boolean>;
  /**
   * Replaces a participant's API key hash only while it is `expected` (nothing else of the row is written),
   * and in the same transaction adds `record` as version `expectedVersion + 1` (the participant's profile,
   * which holds the replaced key's overlap): both or neither, so no reader (another node refreshing its
   * registry) ever sees the new key without the old one's overlap, and a failure cannot leave one alone.
   * False, writing nothing, when the key is not `expected`; RecordConflictError, writing nothing, when the
   * record is no longer at `expectedVersion` (read it again and retry). `journal`, when given, is appended to
   * the operator journal in that same transaction: a rotation in force is never one the journal lacks.
   */
  setApiKeyHash(dipId: string, expected: string, next: string, record: Omit<StoredRecord, 'version'>, expectedVersion: number, journal?: Omit<JournalEntry, 'id'>): Promise<boolean>;
  putWebhook(w: Webhook): Promise<void>;
  deleteWebhook(recipientDipId: string, channel: string): Promise<boolean>;
  webhooks(): Promise<Webhook[]>;
  /** Removes a participant and its webhooks (offboarding); its messages stay in the archive. False when unknown. */
  removeParticipant(dipId: string): Promise<boolean>;
  /**
   * Adds version `expectedVersion + 1` of a record; refuses with RecordConflictError when the latest
   * version is not `expectedVersion` (0: the record must not exist yet).
   */
  putRecord(record: Omit<StoredRecord, 'version'>, expectedVersion: number): Promise<StoredRecord>;
  /** The latest version of every record of a kind. */
  records(kind: string): Promise<StoredRecord[]>;
  /** Every version of one record, oldest first. */
  recordHistory(kind: string, key: string): Promise<StoredRecord[]>;
  /** A token that changes whenever anything here changes: a cheap check before a full reload. */
  version(): Promise<number>;
  /**
   * Calls `onChange` (at least once) after any participant or webhook changes, here or elsewhere. How soon
   * depends on the engine (a cheap version check on SQLite every `pollMs`, LISTEN/NOTIFY on PostgreSQL,
   * which ignores it).
   */
  watch(onChange: () => void, pollMs?: number): Cancel;
}
