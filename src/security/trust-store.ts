/**
 * The CAs a participant's TLS client certificate must chain to: the listener's `ca` option.
 *
 * DEV, UIT and SIT use the environment's own CA in <dataDir>/pki. `trustedCaFiles` (PEM bundles, e.g. the
 * commercial CA a PRD environment uses) replaces it. Certificates differ per environment (spec 5.13.3):
 * each environment has a CA of its own, so a certificate from another environment's CA never chains.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { splitPemBundle } from './signature.js';

export interface TrustStore {
  /** CA certificates, one PEM each. */
  cas: string[];
  /** true when this is the built-in CA alone (its CRL can then be installed in the listener). */
  builtIn: boolean;
  /** Where each CA came from, for logs and the expiry report. */
  sources: Array<{ file: string; certPem: string }>;
}

/** The trust store for client certificates; a file that is not a bundle of CA certificates stops the start with the reason. */
export function clientTrustStore(trustedCaFiles: readonly string[], builtInCaPem: string): TrustStore {
  if (trustedCaFiles.length === 0) return { cas: [builtInCaPem], builtIn: true, sources: [] };
  const sources = readTrustedCaFiles(trustedCaFiles);
  return { cas: sources.map((s) => s.certPem), builtIn: false, sources };
}

/** Every CA certificate in the files, one PEM each; throws naming the file when one is not a bundle of CA certificates. */
export function readTrustedCaFiles(trustedCaFiles: readonly string[]): TrustStore['sources'] {
  const sources: TrustStore['sources'] = [];
  for (const name of trustedCaFiles) {
    const file = resolve(name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`trustedCaFiles: cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
    const blocks = splitPemBundle(text);
    if (blocks.length === 0) throw new Error(`trustedCaFiles: ${file} holds no PEM certificate`);
    for (const [i, pem] of blocks.entries()) {
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(pem);
      } catch (e) {
        throw new Error(`trustedCaFiles: certificate ${i + 1} in ${file} is not readable: ${(e as Error).message}`, { cause: e });
      }
      // A leaf in the bundle would let whoever holds its key (and only them) in: almost certainly a mistake.
      if (!cert.ca) throw new Error(`trustedCaFiles: certificate ${i + 1} in ${file} (${cert.subject.split('\n').join(', ')}) is not a CA certificate`);
      sources.push({ file, certPem: `${pem}\n` });
    }
  }
  return sources;
}
