import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pkiDir } from '../app.js';
import { DipClient } from '../client/dip-client.js';
import type { DipConfig } from '../config.js';
import { certificateInfo } from '../security/signature.js';

/**
 * A participant's credentials folder, as `dip pki issue` and `dip participant add --save` leave it:
 *   key.pem, cert.pem  the participant's key and certificate (mTLS and message signing)
 *   api-key            the API key the DIP issued
 *   dip-url            optional: the DIP to call (default https://localhost:<DIP_PORT>)
 */
export const PROFILE_FILES = { key: 'key.pem', cert: 'cert.pem', apiKey: 'api-key', dipUrl: 'dip-url' } as const;

export interface Profile {
  dipId: string;
  client: DipClient;
}

export function openProfile(dir: string, config: DipConfig): Profile {
  const read = (name: string, what: string): string => {
    const file = join(dir, name);
    if (!existsSync(file)) throw new Error(`${file} is missing (${what})`);
    return readFileSync(file, 'utf8').trim();
  };
  const certPem = read(PROFILE_FILES.cert, 'run `dip pki issue --out DIR` first');
  const keyPem = read(PROFILE_FILES.key, 'run `dip pki issue --out DIR` first');
  const apiKey = read(PROFILE_FILES.apiKey, 'run `dip participant add … --save DIR` first');
  const urlFile = join(dir, PROFILE_FILES.dipUrl);
  const baseUrl = existsSync(urlFile) ? readFileSync(urlFile, 'utf8').trim() : `https://localhost:${config.port}`;
  const caPem = readFileSync(join(pkiDir(config), 'ca.cert.pem'), 'utf8');
  const dipId = certificateInfo(certPem).dipIds[0];
  if (!dipId) throw new Error(`${join(dir, PROFILE_FILES.cert)} carries no DIP ID (SAN urn:dip:participant:…)`);
  return { dipId, client: new DipClient({ baseUrl, apiKey, keyPem: `${keyPem}\n`, certPem: `${certPem}\n`, caPem, answerCas: [caPem], connections: 1 }) };
}
