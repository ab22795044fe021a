import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { adminTokenFile } from '../../src/api/admin.js';
import type { TestDip } from './dip-harness.js';

export interface AdminAnswer {
  status: number;
  headers?: Record<string, string | string[] | undefined>;
  body: any;
}

/** A caller of a test DIP's operator API with a given token (the bootstrap token when none is given). */
export function adminApi(t: TestDip, token?: string): (method: string, path: string, body?: unknown) => Promise<AdminAnswer> {
  const bearer = token ?? readFileSync(adminTokenFile(t.config.dataDir), 'utf8').trim();
  return async (method, path, body) => {
    const res = await request(`http://127.0.0.1:${t.dip.adminPort}${path}`, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: text ? (JSON.parse(text) as unknown) : null };
  };
}
