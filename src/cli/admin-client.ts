import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { adminTokenFile } from '../api/admin.js';
import type { DipConfig } from '../config.js';

/**
 * The operator's credential: DIP_OPERATOR_TOKEN (a named operator account's token, so the journal names
 * the person), else the bootstrap token from the data directory (break-glass; journalled as `bootstrap`).
 */
function operatorToken(config: DipConfig): string {
  const named = process.env.DIP_OPERATOR_TOKEN?.trim();
  if (named) return named;
  try {
    return readFileSync(adminTokenFile(config.dataDir), 'utf8').trim();
  } catch {
    throw new Error(`no operator token: set DIP_OPERATOR_TOKEN, or start the DIP (dip serve) with this DIP_DATA_DIR so that ${adminTokenFile(config.dataDir)} exists`);
  }
}

/** Calls the operator's API of the DIP running on this machine. */
export async function adminCall(config: DipConfig, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<unknown> {
  const token = operatorToken(config);
  const res = await request(`http://127.0.0.1:${config.adminPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`admin API answered ${res.statusCode}: ${text}`);
  return text === '' ? null : (JSON.parse(text) as unknown);
}
