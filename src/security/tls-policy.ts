import { constants } from 'node:crypto';

/**
 * The TLS settings of every listener the DIP opens to the network (participant, anonymous, portals).
 *
 * TLS 1.2 at least. Under TLS 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM, ChaCha20-Poly1305),
 * as the NCSC's TLS guidance asks: forward secrecy, so traffic captured today cannot be read with the
 * server's key later, and no CBC with SHA-1 MACs. Node's default list also takes RSA key exchange
 * (AES256-GCM-SHA384, AES256-SHA) and ECDHE with CBC; a client that offers only those is refused at the
 * handshake (test/tls-ciphers.test.ts). The TLS 1.3 suites are Node's defaults, named here because the
 * `ciphers` option sets both lists.
 */
const TLS13_SUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];
const TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

export const LISTENER_TLS = {
  minVersion: 'TLSv1.2',
  ciphers: [...TLS13_SUITES, ...TLS12_SUITES].join(':'),
  // No TLS 1.2 renegotiation: the client certificate is asked for in the first handshake, so nothing
  // needs it, and each one a client starts costs the server a full handshake (Node allows 3 in 10 min
  // a connection; a pool of connections gets that many each). TLS 1.3 has none.
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
} as const;
