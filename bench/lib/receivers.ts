import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from './dip-process.js';
import { hostNow, sleep, trackChild } from './util.js';

export type ChildRequest =
  | { type: 'start'; id: number; count: number; caPem: string; tls: { key: string; cert: string } }
  | { type: 'phase'; id: number; phase: number; size: number }
  | { type: 'status'; id: number; recipient: number; status: number }
  | { type: 'progress'; id: number; phase: number }
  | { type: 'collect'; id: number; phase: number }
  | { type: 'clock'; id: number }
  | { type: 'stop'; id: number };

export interface ReceiverProgress {
  /** Distinct messages of the phase received, per recipient. */
  delivered: number[];
  duplicates: number;
  calls: number[];
  messagesSeen: number[];
  refusedCalls: number[];
  badSignatures: number;
  strays: number;
  maxBatch: number;
}

export type ChildReply =
  | { type: 'ok'; id: number }
  | { type: 'started'; id: number; urls: string[] }
  | { type: 'progress'; id: number; progress: ReceiverProgress }
  | { type: 'clock'; id: number; at: number }
  | { type: 'collected'; id: number; recv: Float64Array; seq: Int32Array; seqMismatches: number }
  | { type: 'error'; id: number; message: string };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The parent's handle on the receivers child process (see receivers-child.ts). */
export class Receivers {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: ChildReply) => void>();
  urls: string[] = [];

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (raw: unknown) => {
      const msg = raw as ChildReply;
      const done = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      done?.(msg);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  static async start(count: number, caPem: string, tls: { key: string; cert: string }): Promise<Receivers> {
    const here = dirname(fileURLToPath(import.meta.url));
    const child = fork(join(here, 'receivers-child.ts'), [], {
      cwd: REPO_ROOT,
      execArgv: ['--import', 'tsx'],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    trackChild(child);
    const r = new Receivers(child);
    const started = await r.ask({ type: 'start', count, caPem, tls });
    if (started.type !== 'started') throw new Error('receivers did not start');
    r.urls = started.urls;
    return r;
  }

  private ask(req: DistributiveOmit<ChildRequest, 'id'>): Promise<ChildReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (reply) => (reply.type === 'error' ? reject(new Error(`receivers: ${reply.message}`)) : resolve(reply)));
      this.child.send({ ...req, id });
    });
  }

  async phase(phase: number, size: number): Promise<void> {
    await this.ask({ type: 'phase', phase, size });
  }

  /** Makes one recipient answer every call with `status` (200 restores normal service). */
  async setStatus(recipient: number, status: number): Promise<void> {
    await this.ask({ type: 'status', recipient, status });
  }

  async progress(phase: number): Promise<ReceiverProgress> {
    const r = await this.ask({ type: 'progress', phase });
    if (r.type !== 'progress') throw new Error('unexpected reply');
    return r.progress;
  }

  async collect(phase: number): Promise<Float64Array> {
    return (await this.collectWithPositions(phase)).recv;
  }

  /** Receive times and the queue position each message first came at (index * recipients + recipient), and repeats at another position. */
  async collectWithPositions(phase: number): Promise<{ recv: Float64Array; seq: Int32Array; seqMismatches: number }> {
    const r = await this.ask({ type: 'collect', phase });
    if (r.type !== 'collected') throw new Error('unexpected reply');
    return { recv: r.recv, seq: r.seq, seqMismatches: r.seqMismatches };
  }

  /**
   * The receivers' clock minus this process's, from the round trip of `tries` clock requests (the one
   * with the shortest round trip; `uncertaintyMs` is half of it). Both read hostNow(), so it should be ~0;
   * a level reports it so that a latency floor from mismatched clocks is seen, not mistaken for the DIP.
   */
  async clockOffset(tries = 5): Promise<{ offsetMs: number; uncertaintyMs: number }> {
    let best = { offsetMs: Number.NaN, uncertaintyMs: Number.POSITIVE_INFINITY };
    for (let i = 0; i < tries; i++) {
      const sent = hostNow();
      const r = await this.ask({ type: 'clock' });
      const back = hostNow();
      if (r.type !== 'clock') throw new Error('unexpected reply');
      const half = (back - sent) / 2;
      if (half < best.uncertaintyMs) best = { offsetMs: r.at - (sent + half), uncertaintyMs: half };
    }
    return best;
  }

  /** Polls until `check` holds or the timeout passes; returns the last progress and whether it held. */
  async waitFor(phase: number, check: (p: ReceiverProgress) => boolean, timeoutMs: number, pollMs = 50): Promise<{ ok: boolean; progress: ReceiverProgress }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = await this.progress(phase);
      if (check(p)) return { ok: true, progress: p };
      if (Date.now() > deadline) return { ok: false, progress: p };
      await sleep(pollMs);
    }
  }

  async stop(): Promise<void> {
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    await this.ask({ type: 'stop' }).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
