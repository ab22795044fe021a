import { resolve } from 'node:path';
import { DEFAULTS, type DipConfig } from '../config.js';
import { shellWord } from './shell-word.js';

export interface ListeningDip {
  /** The participant listener's port as bound (a free one when `port` was 0). */
  port: number;
  /** The operator API's port as bound. */
  adminPort: number;
  pkiDir: string;
  pkiCreated: boolean;
}

/**
 * What `dip serve` prints on start: where it listens and how to onboard a participant from another
 * terminal. The commands there read their settings as `dip serve` did, from the environment and the
 * working folder, and a new terminal has neither: run with a scratch DIP_DATA_DIR (or a DIP_CONFIG, or
 * on other ports), `participant add` would register into a fresh ./data the running DIP never reads, and
 * `send` would call port 8443. So every setting that differs from the default is printed to export.
 */
export function onboardingHint(config: DipConfig, dip: ListeningDip, env: NodeJS.ProcessEnv = process.env): string {
  const exports: string[] = [];
  if (env.DIP_CONFIG !== undefined) exports.push(`DIP_CONFIG=${shellWord(resolve(env.DIP_CONFIG))}`);
  if (resolve(config.dataDir) !== resolve(DEFAULTS.dataDir)) exports.push(`DIP_DATA_DIR=${shellWord(resolve(config.dataDir))}`);
  if (dip.port !== DEFAULTS.port) exports.push(`DIP_PORT=${dip.port}`);
  if (dip.adminPort !== DEFAULTS.adminPort) exports.push(`DIP_ADMIN_PORT=${dip.adminPort}`);
  if (config.environment !== DEFAULTS.environment && env.DIP_ENV !== undefined) exports.push(`DIP_ENV=${config.environment}`);
  return [
    '',
    `OpenDIP ${config.environment} is listening on https://localhost:${dip.port} (data: ${config.dataDir})`,
    dip.pkiCreated ? `A development PKI was created in ${dip.pkiDir}.` : `Development PKI: ${dip.pkiDir}`,
    'Onboard a participant (in another terminal, in this folder):',
    ...(exports.length > 0 ? [`  export ${exports.join(' ')}`] : []),
    '  npm run dip -- pki issue --dip-id 1000000001 --out ./sup',
    '  npm run dip -- participant add --dip-id 1000000001 --role SUP --cert ./sup/cert.pem --save ./sup',
    '',
  ].join('\n');
}
