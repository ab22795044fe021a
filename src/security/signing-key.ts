/**
 * The DIP's message-signing key in force, replaced without a restart.
 *
 * `dip pki rotate-signing` (rotateSigningCertificate in pki.ts) writes a new key and certificate into
 * <dataDir>/pki, each file atomically and the certificate last. A running DIP polls the certificate
 * file and, once the new pair checks out (key matches, chains to the CA), signs every webhook call
 * from then on with it. Recipients verify the chain to the CA, not a pinned certificate, so calls
 * signed before and after the switch are accepted alike; nothing in flight fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NoticeSigner } from '../ports/alarms.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { OutboundSigner } from '../ports/webhook.js';
import { KeyFileWatcher } from './key-file-watcher.js';
import { PKI_FILES, type KeyAndCert } from './pki.js';
import { notDipSigner, Signer, verifyChain, type SignedAnswer } from './signature.js';

/** Signs an answer of messages (status and continuation token, and the method and URL of the request it answers): the X-DIP-* headers. */
export interface AnswerSigner {
  sign(answer: SignedAnswer, method: string, url: string, body: Buffer): Promise<Record<string, string>>;
}

interface SigningKey {
  signer: Signer;
  certPem: string;
}

/** The signing key in force; its listeners are told after a switch (delivery processes are told to switch too). */
export class SigningKeyWatcher extends KeyFileWatcher<SigningKey> {
  constructor(pkiDir: string, ca: KeyAndCert, initial: KeyAndCert, clock: Clock, logger: Logger) {
    super(
      { files: [join(pkiDir, PKI_FILES.signingCert)], what: 'signing key or certificate', read: (held) => readSigningKey(pkiDir, ca, held, logger) },
      { signer: new Signer(initial.keyPem, initial.certPem), certPem: initial.certPem },
      clock,
      logger,
    );
  }

  /** The signer to use for the next call (never hold on to it: it changes on rotation). */
  current(): Signer {
    return this.inForce().signer;
  }

  /** What signs the DIP's webhook calls (deliveries). The key is read at each call, so a rotation applies from the next one. */
  outbound(): OutboundSigner {
    // A fresh object per call: the caller adds its own headers (content-type, sequence) to it.
    return { sign: async (method, url, body) => ({ ...(await this.current().sign(method, url, body)) }) };
  }

  /**
   * What signs alarm and maintenance notices: the same key, over a notice's own string (Signer.signNotice),
   * so a notice never verifies as a delivery at a message webhook a participant pointed its subscription at.
   */
  notices(): NoticeSigner {
    return { signNotice: async (method, url, body) => ({ ...(await this.current().signNotice(method, url, body)) }) };
  }

  /** What signs pull and replay answers: the key in force, over an answer's own string (Signer.signAnswer). */
  answers(): AnswerSigner {
    return { sign: async (answer, method, url, body) => ({ ...(await this.current().signAnswer(answer, method, url, body)) }) };
  }

  /** The signing certificate in force (PEM), as GET /certificates/dip serves it. */
  certificatePem(): string {
    return this.inForce().certPem;
  }
}

/** The pair on disk if it is another one recipients will take as the DIP's; null keeps the one in force (said why). */
function readSigningKey(pkiDir: string, ca: KeyAndCert, held: SigningKey, logger: Logger): SigningKey | null {
  const certPem = readFileSync(join(pkiDir, PKI_FILES.signingCert), 'utf8');
  if (certPem === held.certPem) return null;
  const next = new Signer(readFileSync(join(pkiDir, PKI_FILES.signingKey), 'utf8'), certPem);
  // Recipients would refuse a certificate that does not chain to the environment's CA: never switch to one.
  if (!verifyChain(certPem, [ca.certPem])) {
    logger.error({ subject: next.certificate.subject, issuer: next.certificate.issuer }, "new signing certificate does not chain to the environment's CA (or is not valid now); keeping the one in force");
    return null;
  }
  // Nor one that names a participant or is for TLS: receivers refuse those as not the DIP's.
  const notDips = notDipSigner(certPem);
  if (notDips !== null) {
    logger.error({ subject: next.certificate.subject, why: notDips }, 'new signing certificate is not one recipients take as the DIP\'s; keeping the one in force');
    return null;
  }
  logger.info(
    { previousSerial: held.signer.certificate.serialNumber, serial: next.certificate.serialNumber, notAfter: next.certificate.notAfter.toISOString() },
    'DIP signing key rotated: webhook calls are signed with the new key from now on',
  );
  return { signer: next, certPem };
}
