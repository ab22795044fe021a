import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { adminTokenFile } from '../api/admin.js';
import type { DipConfig } from '../config.js';

/** Calls the operator's API of the DIP running on this machine, with the token from its data directory. */
export async function adminCall(config: DipConfig, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  let token: string;
  try {
    token = readFileSync(adminTokenFile(config.dataDir), 'utf8').trim();
  } catch {
    throw new Error(`no operator token at ${adminTokenFile(config.dataDir)}: start the DIP (dip serve) with this DIP_DATA_DIR first`);
  }
  const res = await request(`http://127.0.0.1:${config.adminPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`admin API answered ${res.statusCode}: ${text}`);
  return JSON.parse(text) as unknown;
}
