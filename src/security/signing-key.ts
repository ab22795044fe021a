/**
 * The DIP's message-signing key in force, replaced without a restart.
 *
 * `dip pki rotate-signing` (rotateSigningCertificate in pki.ts) writes a new key and certificate into
 * <dataDir>/pki, each file atomically and the certificate last. A running DIP polls the certificate
 * file and, once the new pair checks out (key matches, chains to the CA), signs every webhook call
 * from then on with it. Recipients verify the chain to the CA, not a pinned certificate, so calls
 * signed before and after the switch are accepted alike; nothing in flight fails.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../ports/logger.js';
import type { OutboundSigner } from '../ports/webhook.js';
import { PKI_FILES, type KeyAndCert } from './pki.js';
import { notDipSigner, Signer, verifyChain, type SignedAnswer } from './signature.js';

/** Signs an answer of messages (status and continuation token, and the method and URL of the request it answers): the X-DIP-* headers. */
export interface AnswerSigner {
  sign(answer: SignedAnswer, method: string, url: string, body: Buffer): Promise<Record<string, string>>;
}

export class SigningKeyWatcher {
  private signer: Signer;
  private certPem: string;
  private changeKey = '';
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly pkiDir: string,
    private readonly ca: KeyAndCert,
    initial: KeyAndCert,
    private readonly logger: Logger,
  ) {
    this.signer = new Signer(initial.keyPem, initial.certPem);
    this.certPem = initial.certPem;
    this.changeKey = this.fileKey() ?? '';
  }

  /** The signer to use for the next call (never hold on to it: it changes on rotation). */
  current(): Signer {
    return this.signer;
  }

  /**
   * What signs the DIP's webhook calls and its alarm and maintenance notices: one signer for all,
   * so a subscriber verifies a notice with the code a recipient verifies a call with. The key is read at
   * each call, so a rotation applies from the next one.
   */
  outbound(): OutboundSigner {
    // A fresh object per call: the caller adds its own headers (content-type, sequence) to it.
    return { sign: async (method, url, body) => ({ ...(await this.signer.sign(method, url, body)) }) };
  }

  /** What signs pull and replay answers: the key in force, over an answer's own string (Signer.signAnswer). */
  answers(): AnswerSigner {
    return { sign: async (answer, method, url, body) => ({ ...(await this.signer.signAnswer(answer, method, url, body)) }) };
  }

  /** The signing certificate in force (PEM), as GET /certificates/dip serves it. */
  certificatePem(): string {
    return this.certPem;
  }

  start(pollMs: number): void {
    this.timer = setInterval(() => this.reload(), pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Called after the key in force was replaced (delivery processes are told to switch too). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Switches to the pair on disk if the certificate file changed and the pair is usable. */
  reload(): void {
    const key = this.fileKey();
    if (key === undefined || key === this.changeKey) return;
    // Remembered even when the pair is refused below: the same broken files are not logged every poll.
    this.changeKey = key;
    let next: Signer;
    let certPem: string;
    try {
      certPem = readFileSync(join(this.pkiDir, PKI_FILES.signingCert), 'utf8');
      if (certPem === this.certPem) return;
      next = new Signer(readFileSync(join(this.pkiDir, PKI_FILES.signingKey), 'utf8'), certPem);
    } catch (err) {
      this.logger.error({ err, dir: this.pkiDir }, 'new signing key or certificate is unusable; keeping the one in force');
      return;
    }
    // Recipients would refuse a certificate that does not chain to the environment's CA: never switch to one.
    if (!verifyChain(certPem, [this.ca.certPem])) {
      this.logger.error({ subject: next.certificate.subject, issuer: next.certificate.issuer }, "new signing certificate does not chain to the environment's CA (or is not valid now); keeping the one in force");
      return;
    }
    // Nor one that names a participant or is for TLS: receivers refuse those as not the DIP's.
    const notDips = notDipSigner(certPem);
    if (notDips !== null) {
      this.logger.error({ subject: next.certificate.subject, why: notDips }, 'new signing certificate is not one recipients take as the DIP\'s; keeping the one in force');
      return;
    }
    const previous = this.signer.certificate;
    this.signer = next;
    this.certPem = certPem;
    this.logger.info(
      { previousSerial: previous.serialNumber, serial: next.certificate.serialNumber, notAfter: next.certificate.notAfter.toISOString() },
      'DIP signing key rotated: webhook calls are signed with the new key from now on',
    );
    for (const l of this.listeners) l();
  }

  /** Changes with every replacement: rename gives a new inode even within one mtime tick. */
  private fileKey(): string | undefined {
    try {
      const s = statSync(join(this.pkiDir, PKI_FILES.signingCert));
      return `${s.ino}:${s.mtimeMs}:${s.size}`;
    } catch {
      return undefined;
    }
  }
}
