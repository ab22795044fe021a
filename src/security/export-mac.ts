import { createHmac, hkdfSync, timingSafeEqual, type Hmac } from 'node:crypto';

/**
 * The key a migration export (`dip migrate export`) is authenticated with: HKDF-SHA-256 of the deployment's
 * first at-rest data key, under a label of its own (no other use of that key can make or check this MAC).
 * The data key is reached only through the key-encryption key (a key file, or a KMS), so only a DIP holding
 * the exporting DIP's KEK can make a MAC the importer accepts, or check one; the first key, not the current,
 * so a rotation never changes it (as Sealer.index).
 */
export function exportMacKey(firstDataKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', firstDataKey, Buffer.alloc(0), 'opendip-migration-export-mac', 32));
}

/** A streaming HMAC-SHA-256 over the lines of an export, as written (each with its newline). */
export class ExportMac {
  private readonly hmac: Hmac;

  constructor(key: Buffer) {
    this.hmac = createHmac('sha256', key);
  }

  line(text: string): void {
    this.hmac.update(text, 'utf8').update('\n');
  }

  digest(): string {
    return this.hmac.digest('base64');
  }

  /** In constant time: whether the lines fed in are those the MAC was made over. */
  matches(mac: string): boolean {
    const ours = this.hmac.digest();
    const theirs = Buffer.from(mac, 'base64');
    return theirs.length === ours.length && timingSafeEqual(ours, theirs);
  }
}
