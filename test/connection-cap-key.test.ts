/**
 * The participant listener's connection cap and the overload guard's fair share count the same sender: a
 * participant's connections and its submissions are keyed alike (senderKey), whatever order its
 * certificate names its DIP IDs in.
 */

import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { participantHolder } from '../src/api/connection-cap.js';
import { senderKey } from '../src/api/overload.js';

/** A TLS socket whose peer certificate names `ids` (as its SAN URIs) and has `fingerprint`. */
function socketWith(ids: string[], fingerprint: string): Socket {
  const cert = {
    subjectAltName: ids.map((id) => `URI:urn:dip:participant:${id}`).join(', '),
    fingerprint256: fingerprint,
    serialNumber: '01',
    issuer: 'CN=test CA',
    validTo: 'Dec 31 00:00:00 2030 GMT',
  };
  return { getPeerX509Certificate: () => cert, remoteAddress: '192.0.2.7' } as unknown as Socket;
}

describe('the connection cap keys a participant as the fair share does', () => {
  // Keyed by the certificate's first DIP ID alone, a certificate naming A and B and one naming B and A held
  // a cap each (the fair share counts them as one sender), and one naming A and one naming A and C shared one
  // (the fair share counts two).
  it('by every DIP ID its certificate names, sorted; a certificate naming none by its fingerprint', () => {
    const ab = socketWith(['1000000001', '1000000002'], 'AA');
    const ba = socketWith(['1000000002', '1000000001'], 'BB');
    const a = socketWith(['1000000001'], 'CC');
    const ac = socketWith(['1000000001', '1000000003'], 'DD');
    const none = socketWith([], 'EE');
    for (const s of [ab, ba, a, ac, none]) expect(participantHolder(s).key).toBe(senderKey(s));
    expect(participantHolder(ab).key).toBe(participantHolder(ba).key);
    expect(participantHolder(a).key).not.toBe(participantHolder(ac).key);
    // A refusal still names the caller as the activity log does (its first DIP ID), and every DIP ID it holds the cap for.
    expect(participantHolder(ba)).toMatchObject({ caller: '1000000002', who: '1000000001, 1000000002' });
    expect(participantHolder(a)).toMatchObject({ caller: '1000000001', who: '1000000001' });
    expect(participantHolder(none)).toMatchObject({ caller: null, who: 'the certificate EE' });
  });
});
