/**
 * The recipients' side of the bench, in its own process so the load generator cannot starve it: one
 * HTTPS webhook endpoint per recipient (src/client/webhook-receiver.ts, which verifies the DIP's
 * signature and that its certificate chains to the DIP's CA, as a real recipient must).
 *
 * Each delivered message carries its phase and index in S1.senderUniqueReference (suffix p<phase>x<index>);
 * the time it was received is kept in a per-phase array and handed to the parent in bulk on request.
 */
import { startWebhookReceiver, type ReceivedCall, type WebhookReceiver } from '../../src/client/webhook-receiver.js';
import type { ChildReply, ChildRequest, ReceiverProgress } from './receivers.js';
import { hostNow } from './util.js';

interface PhaseState {
  recipients: number;
  /** Receive time (hostNow(), ms with sub-ms resolution) of message i at recipient r: recv[i * recipients + r]; NaN until it arrives. */
  recv: Float64Array;
  /** Queue position (X-OpenDIP-Sequence) message i first arrived at, per recipient, same layout; 0 until it arrives. */
  seq: Int32Array;
  /** Repeats that came at another position than the first sighting (a defect: positions are fixed). */
  seqMismatches: number;
  size: number;
  delivered: number[];
  duplicates: number;
}

const phases = new Map<number, PhaseState>();
const status: Array<number | undefined> = [];
const calls: number[] = [];
const refused: number[] = [];
const messagesSeen: number[] = [];
let badSignatures = 0;
let strays = 0;
let maxBatch = 0;
let receivers: WebhookReceiver[] = [];
const SUFFIX = /-p(\d+)x(\d+)$/;

function record(r: number, call: ReceivedCall): void {
  const t = hostNow();
  calls[r] = (calls[r] ?? 0) + 1;
  maxBatch = Math.max(maxBatch, call.messages.length);
  messagesSeen[r] = (messagesSeen[r] ?? 0) + call.messages.length;
  for (const [k, m] of call.messages.entries()) {
    const position = call.firstSeq === null ? 0 : call.firstSeq + k;
    const ref = (m as { payload?: { CommonBlock?: { S1?: { senderUniqueReference?: unknown } } } }).payload?.CommonBlock?.S1?.senderUniqueReference;
    const match = typeof ref === 'string' ? SUFFIX.exec(ref) : null;
    const phase = match ? phases.get(Number(match[1])) : undefined;
    const index = match ? Number(match[2]) : -1;
    if (!phase || index >= phase.size) {
      strays++;
      continue;
    }
    const slot = index * phase.recipients + r;
    if (Number.isNaN(phase.recv[slot]!)) {
      phase.recv[slot] = t;
      phase.seq[slot] = position;
      phase.delivered[r] = (phase.delivered[r] ?? 0) + 1;
    } else {
      phase.duplicates++;
      if (phase.seq[slot] !== position) phase.seqMismatches++;
    }
  }
}

function reply(msg: ChildReply): void {
  process.send!(msg);
}

process.on('message', (raw: unknown) => {
  const msg = raw as ChildRequest;
  void handle(msg).catch((e: unknown) => reply({ type: 'error', id: 'id' in msg ? msg.id : -1, message: (e as Error).stack ?? String(e) }));
});

async function handle(msg: ChildRequest): Promise<void> {
  switch (msg.type) {
    case 'start': {
      receivers = await Promise.all(
        Array.from({ length: msg.count }, (_, r) =>
          startWebhookReceiver({
            tls: msg.tls,
            trustedCas: [msg.caPem],
            respond: (call) => {
              if (!call.signature.ok) {
                badSignatures++;
                return 401;
              }
              const forced = status[r];
              if (forced !== undefined && (forced < 200 || forced >= 300)) refused[r] = (refused[r] ?? 0) + 1;
              return forced ?? 200;
            },
            onCall: (call) => record(r, call),
          }),
        ),
      );
      reply({ type: 'started', id: msg.id, urls: receivers.map((x, r) => `${x.url}recipient-${r}/if-021`) });
      return;
    }
    case 'phase':
      phases.set(msg.phase, {
        recipients: receivers.length,
        size: msg.size,
        recv: new Float64Array(msg.size * receivers.length).fill(Number.NaN),
        seq: new Int32Array(msg.size * receivers.length),
        seqMismatches: 0,
        delivered: receivers.map(() => 0),
        duplicates: 0,
      });
      reply({ type: 'ok', id: msg.id });
      return;
    case 'status':
      status[msg.recipient] = msg.status === 200 ? undefined : msg.status;
      reply({ type: 'ok', id: msg.id });
      return;
    case 'progress': {
      const p = phases.get(msg.phase);
      const progress: ReceiverProgress = {
        delivered: p ? [...p.delivered] : [],
        duplicates: p?.duplicates ?? 0,
        calls: receivers.map((_, r) => calls[r] ?? 0),
        messagesSeen: receivers.map((_, r) => messagesSeen[r] ?? 0),
        refusedCalls: receivers.map((_, r) => refused[r] ?? 0),
        badSignatures,
        strays,
        maxBatch,
      };
      reply({ type: 'progress', id: msg.id, progress });
      return;
    }
    case 'clock':
      reply({ type: 'clock', id: msg.id, at: hostNow() });
      return;
    case 'collect': {
      const p = phases.get(msg.phase);
      phases.delete(msg.phase);
      reply({ type: 'collected', id: msg.id, recv: p?.recv ?? new Float64Array(0), seq: p?.seq ?? new Int32Array(0), seqMismatches: p?.seqMismatches ?? 0 });
      return;
    }
    case 'stop':
      await Promise.all(receivers.map((x) => x.close()));
      reply({ type: 'ok', id: msg.id });
      process.disconnect();
      return;
  }
}
