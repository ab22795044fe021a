import { randomBytes } from 'node:crypto';
import { newAttemptId } from '../../src/domain/attempt-id.js';
import { afterEach, beforeEach } from 'vitest';
import type { Backend } from '../../src/ports/backend.js';
import type { AcceptedBatch, AcceptedMessage } from '../../src/ports/message-log.js';

/** Holds the disk syncs of an embedded store, to observe what is visible before a write is durable. */
export interface SyncGate {
  hold(): void;
  release(): void;
}

export interface OpenedForContract {
  backend: Backend;
  /** Opens the same store again (after `backend.close()`), to prove durability. */
  reopen(): Promise<Backend>;
  /** Present where the adapter lets a test hold its durability step (SQLite's WAL sync). */
  syncGate?: SyncGate;
  /**
   * Durability and visibility are decided inside a database server (PostgreSQL makes a commit visible
   * only after its WAL flush and synchronous standbys): an entry may be read a moment before the writer
   * hears its COMMIT returned. It is durable by then, so the contract only asks that such a write succeeds.
   */
  serverCommit?: boolean;
  /** Deletes a message's row behind the store's back, as damage would (a partial restore, a hand-made DELETE). */
  loseMessage: (messageId: number) => Promise<void>;
  /** The mpan column of the MPAN lookup as it is on disk, read over a connection of the test's own. */
  storedMpans?: () => Promise<string[]>;
}

export type BackendFactory = () => Promise<OpenedForContract>;

/** A fresh backend per test, closed after it; `ctx.backend` may be replaced by a reopen. */
export function useBackend(open: BackendFactory): OpenedForContract {
  const ctx = {} as OpenedForContract;
  beforeEach(async () => {
    const opened = await open();
    ctx.backend = opened.backend;
    ctx.reopen = async () => {
      ctx.backend = await opened.reopen();
      return ctx.backend;
    };
    ctx.syncGate = opened.syncGate;
    ctx.serverCommit = opened.serverCommit;
    ctx.loseMessage = opened.loseMessage;
    ctx.storedMpans = opened.storedMpans;
  });
  afterEach(async () => {
    await ctx.backend.close();
  });
  return ctx;
}

let n = 0;
export function message(recipients: string[], over: Partial<AcceptedMessage> = {}): AcceptedMessage {
  n += 1;
  return {
    transactionId: `T-IF-021-SDS0000001-SDS-20260101-${String(n).padStart(16, '0')}`,
    channel: 'IF-021',
    eventCode: 'ActivePower',
    senderDipId: 'SDS0000001',
    senderRole: 'SDS',
    senderUniqueReference: `ref-${n}-${process.pid}`,
    correlationId: null,
    mpan: '1200000000001',
    receivedAt: Date.now(),
    outbound: JSON.stringify({ n }),
    recipients,
    ...over,
  };
}

export function batch(messages: AcceptedMessage[]): AcceptedBatch {
  return { channel: 'IF-021', senderDipId: 'SDS0000001', receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}', messages };
}

/** A fresh delivery attempt ID, as a webhook call or a pull's acknowledgement is given one. */
export const attemptId = (atMs: number = Date.now()): string => newAttemptId(atMs, randomBytes);

export const sup = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
export const mds = { recipientDipId: 'MDS0000001', channel: 'IF-021' };
