import type { MessageHeader } from '../../src/domain/message.js';
import type { Participant } from '../../src/domain/participant.js';
import type { RoutingDirectory } from '../../src/domain/routing.js';

/** A registered participant as the routing core sees it (no certificate: routing never reads one). */
export const person = (dipId: string, roles: string[]): Participant => ({ dipId, roles, organisation: dipId, certificatePem: '', certificateFingerprint: '', connectionProvider: null, createdAt: 0 });

/** The directory route() reads, over a fixed list of participants. */
export const directoryOf = (people: readonly Participant[]): RoutingDirectory => ({
  participant: (id) => people.find((p) => p.dipId === id),
  holdersOf: (role) => people.filter((p) => p.roles.includes(role)),
});

/** An IF-021 header from SDS 2000000001 to supplier 1000000001, without an MPAN, unless told otherwise. */
export const routingHeader = (over: Partial<MessageHeader> = {}): MessageHeader => ({
  interfaceId: 'IF-021',
  eventCode: '[ActivePower]',
  schemaVersion: '011',
  environmentTag: 'DEV',
  senderUniqueReference: 'ref',
  senderTimestamp: '2026-01-01T00:00:00+00:00',
  senderDipId: '2000000001',
  senderRoleId: 'SDS',
  senderCorrelationId: null,
  connectionProviderId: null,
  primaryRecipients: ['1000000001'],
  mpan: null,
  ...over,
});
