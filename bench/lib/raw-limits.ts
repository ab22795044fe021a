import Database from 'better-sqlite3';
import { fork } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { createCertificateAuthority, issueParticipantCertificate, issueServerCertificate } from '../../src/security/pki.js';
import { REPO_ROOT } from './dip-process.js';
import { procCpuSeconds, round, trackChild, hostNow } from './util.js';

export interface SqliteResult {
  rowBytes: number;
  rowsPerTransaction: number;
  rowsPerSecond: number;
  transactionsPerSecond: number;
  mbPerSecond: number;
}

/**
 * Durable inserts with better-sqlite3 as the DIP configures it (WAL, synchronous=FULL), in a fresh file
 * on the same filesystem as the DIP's data directories (os.tmpdir()).
 */
export function sqliteInsertRate(opts: { rows: string[]; rowsPerTransaction: number; durationMs: number }): SqliteResult {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-bench-sqlite-'));
  try {
    const db = new Database(join(dir, 'raw.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
    const tx = db.transaction((rows: string[]) => {
      for (const r of rows) insert.run(r);
    });
    const batch: string[] = [];
    let n = 0;
    let txs = 0;
    let bytes = 0;
    // Warm up the file and page cache.
    tx(opts.rows.slice(0, Math.min(opts.rows.length, opts.rowsPerTransaction)));
    const t0 = hostNow();
    while (hostNow() - t0 < opts.durationMs) {
      batch.length = 0;
      for (let i = 0; i < opts.rowsPerTransaction; i++) {
        const r = opts.rows[(n + i) % opts.rows.length]!;
        batch.push(r);
        bytes += r.length;
      }
      tx(batch);
      n += opts.rowsPerTransaction;
      txs++;
    }
    const s = (hostNow() - t0) / 1000;
    db.close();
    return {
      rowBytes: Math.round(bytes / n),
      rowsPerTransaction: opts.rowsPerTransaction,
      rowsPerSecond: round(n / s, 0),
      transactionsPerSecond: round(txs / s, 0),
      mbPerSecond: round(bytes / s / 1e6, 1),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let probeRows: string[] | undefined;
/**
 * A 300 ms sample of the disk's durable-commit rate (1-row transactions, synchronous=FULL), taken before
 * each phase: on a shared host fsync latency swings by an order of magnitude with the neighbours' I/O.
 */
export function fsyncProbe(durationMs = 300): number {
  probeRows ??= [Array.from({ length: 45 }, () => 'x'.repeat(100)).join('')];
  return sqliteInsertRate({ rows: probeRows, rowsPerTransaction: 1, durationMs }).transactionsPerSecond;
}

export interface EchoResult {
  bodyBytes: number;
  concurrency: number;
  requestsPerSecond: number;
  serverCores: number;
  /** CPU of this (client) process: with one client process the generator, not the server, may be the limit. */
  clientCores: number;
  p50Ms: number;
}

export interface EchoServer {
  run(bodyBytes: number, concurrency: number, durationMs: number): Promise<EchoResult>;
  stop(): Promise<void>;
}

/** A bare node:https echo server with mutual TLS in a child process, driven closed-loop from here. */
export async function startEchoServer(): Promise<EchoServer> {
  const ca = await createCertificateAuthority({ commonName: 'bench echo CA', environment: 'DEV', validDays: 2 });
  const [server, client] = await Promise.all([
    issueServerCertificate(ca, { hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 2 }),
    issueParticipantCertificate(ca, { organisation: 'bench', dipIds: ['2000000001'], environment: 'DEV', validDays: 2 }),
  ]);
  const here = dirname(fileURLToPath(import.meta.url));
  const child = fork(join(here, 'echo-child.ts'), [], { cwd: REPO_ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  trackChild(child);
  const port = await new Promise<number>((resolve) => {
    child.once('message', (m: unknown) => resolve((m as { port: number }).port));
    child.send({ key: server.keyPem, cert: server.certPem, ca: ca.certPem });
  });
  const url = `https://127.0.0.1:${port}/echo`;
  return {
    async run(bodyBytes, concurrency, durationMs) {
      const agent = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000, connect: { ca: ca.certPem, cert: client.certPem, key: client.keyPem } });
      const body = `[${'"x",'.repeat(Math.max(0, Math.floor((bodyBytes - 6) / 4)))}"x"]`;
      const lat: number[] = [];
      const once = async () => {
        const res = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher: agent });
        await res.body.text();
      };
      // Open the connections and warm up.
      const warmUntil = hostNow() + 1000;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (hostNow() < warmUntil) await once();
      }));
      let n = 0;
      const cpu0 = procCpuSeconds(child.pid!);
      const own0 = process.cpuUsage();
      const t0 = hostNow();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (hostNow() - t0 < durationMs) {
            const s = hostNow();
            await once();
            lat.push(hostNow() - s);
            n++;
          }
        }),
      );
      const s = (hostNow() - t0) / 1000;
      const cpu = procCpuSeconds(child.pid!) - cpu0;
      const own = process.cpuUsage(own0);
      await agent.close();
      lat.sort((a, b) => a - b);
      return { bodyBytes: body.length, concurrency, requestsPerSecond: round(n / s, 0), serverCores: round(cpu / s, 2), clientCores: round((own.user + own.system) / 1e6 / s, 2), p50Ms: round(lat[Math.floor(lat.length / 2)] ?? Number.NaN, 2) };
    },
    async stop() {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.disconnect();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface RsaResult {
  /** Async crypto.sign (libuv thread pool, all cores). */
  asyncSignsPerSecond: number;
  /** Synchronous crypto.sign on one thread. */
  syncSignsPerSecond: number;
  /** Synchronous crypto.verify on one thread (what the DIP does per request, and a recipient per call). */
  syncVerifiesPerSecond: number;
}

/** RSA-2048 PKCS#1 v1.5 / SHA-256, as the DIP and its participants sign (src/security/signature.ts). */
export async function rsaRates(durationMs: number): Promise<RsaResult> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const data = Buffer.from(`POST;https://127.0.0.1:8443/dip-channel/if-021;${new Date().toISOString()};${'A'.repeat(44)}`);
  const signAsync = (key: KeyObject) =>
    new Promise<Buffer>((resolve, reject) => cryptoSign('sha256', data, key, (err, sig) => (err ? reject(err) : resolve(sig))));
  // Async: enough in flight to keep every pool thread busy.
  let n = 0;
  const t0 = hostNow();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (hostNow() - t0 < durationMs) {
        await signAsync(privateKey);
        n++;
      }
    }),
  );
  const asyncRate = n / ((hostNow() - t0) / 1000);
  let m = 0;
  let sig = Buffer.alloc(0);
  const t1 = hostNow();
  while (hostNow() - t1 < durationMs / 2) {
    sig = cryptoSign('sha256', data, privateKey);
    m++;
  }
  const syncRate = m / ((hostNow() - t1) / 1000);
  let v = 0;
  const t2 = hostNow();
  while (hostNow() - t2 < durationMs / 2) {
    if (!cryptoVerify('sha256', data, publicKey, sig)) throw new Error('verify failed');
    v++;
  }
  const verifyRate = v / ((hostNow() - t2) / 1000);
  return { asyncSignsPerSecond: round(asyncRate, 0), syncSignsPerSecond: round(syncRate, 0), syncVerifiesPerSecond: round(verifyRate, 0) };
}
