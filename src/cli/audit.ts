import { privateWriteStream } from './private-output.js';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { openActivityLog } from '../adapters/backend.js';
import { systemClock } from '../adapters/clock.js';
import { loadConfig } from '../config.js';
import { exportActivity, verifyActivityLog } from '../pipeline/activity-recorder.js';
import { toCsv } from '../pipeline/reports.js';
import { adminCall } from './admin-client.js';

const instant = (v: string): number => {
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`'${v}' is not a date or date-time (ISO 8601, e.g. 2026-12-01 or 2026-12-01T10:00:00Z)`);
  return ms;
};

const status = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 100 || n > 599) throw new InvalidArgumentError(`'${v}' is not an HTTP status (100 to 599)`);
  return n;
};

/**
 * `dip audit`: the API activity log, read from the store directly (the DIP may be running: SQLite
 * readers do not block its writer, and PostgreSQL is shared anyway).
 */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the API activity log (every request to every listener; hash-chained)');
  audit
    .command('verify')
    .description('check every chain of the activity log; names the first bad record (exit 1 when one is found)')
    .action(async () => {
      const store = await openActivityLog(loadConfig(), systemClock);
      try {
        const report = await verifyActivityLog(store);
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        if (!report.ok && report.firstBad) {
          process.stderr.write(`activity log TAMPERED: chain ${report.firstBad.chain}, record ${report.firstBad.seq}: ${report.firstBad.reason}\n`);
          process.exitCode = 1;
        }
        // Not a tampering (the exit status stays as the chains say), but records the auditor will not find.
        for (const l of report.walLosses) process.stderr.write(`activity log: records lost (a WAL, or the whole file), found at ${new Date(l.at).toISOString()}: ${l.lost}\n`);
      } finally {
        await store.close();
      }
    });
  audit
    .command('export')
    .description('the records received in [--from, --to) as JSON lines, oldest first; --request-id finds one request over the whole log')
    .option('--from <when>', 'start (inclusive), ISO 8601; required unless --request-id is given (then: the log\'s start)', instant)
    .option('--to <when>', 'end (exclusive), ISO 8601 (default: now)', instant)
    .option('--request-id <id>', 'only the request answered with this x-request-id (indexed)')
    .option('--min-status <status>', 'only requests answered with this HTTP status or above (400: every refusal)', status)
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (o: { from?: number; to?: number; requestId?: string; minStatus?: number; out?: string }) => {
      if (o.from === undefined && o.requestId === undefined) throw new InvalidArgumentError('--from is required unless --request-id names the request');
      const filter = { ...(o.requestId !== undefined ? { requestId: o.requestId } : {}), ...(o.minStatus !== undefined ? { minStatus: o.minStatus } : {}) };
      const store = await openActivityLog(loadConfig(), systemClock);
      const out: Writable = o.out ? privateWriteStream(o.out) : process.stdout;
      let n = 0;
      try {
        for await (const r of exportActivity(store, o.from ?? 0, o.to ?? Date.now(), undefined, filter)) {
          if (!out.write(`${JSON.stringify(r)}\n`)) await new Promise((resolve) => out.once('drain', resolve));
          n += 1;
        }
      } finally {
        await store.close();
        if (o.out) await new Promise((resolve) => out.end(resolve));
      }
      process.stderr.write(`${n} records\n`);
    });

  program
    .command('report')
    .description('reports, traces and journeys from the running DIP (operator; spec 5.11): throughput, latency, sender-audit, processes, trace, mpan, journey')
    .argument('<kind>', 'throughput | latency | sender-audit | processes | trace | mpan | journey')
    .argument('[id]', 'the MPAN (mpan) or transaction ID (journey)')
    .option('--from <when>', 'start: a date (midnight UTC) or a date-time with its zone, e.g. 2026-12-04T09:00:00+01:00 (default: a day before --to)')
    .option('--to <when>', 'end, not included: as --from (default: now)')
    .option('--granularity <g>', 'minute | hour | day | month', 'hour')
    .option('--channel <ids>', 'one or more interface IDs, comma-separated (IF-021,IF-022), any case; one the catalogue does not hold is refused')
    .option('--sender <dipId>')
    .option('--recipient <dipId>')
    .option('--transaction <id>', 'trace: a transaction ID')
    .option('--correlation <id>', 'trace: a workflow correlation ID')
    .option('--channels <ids>', 'processes: a chain of your own, 2 to 10 interface IDs in order, comma-separated (IF-031,IF-032)')
    .option('--link-by <link>', 'processes: what links the chain: correlationID | transactionID | mpan')
    .option('--csv', 'print CSV instead of JSON')
    .action(async (kind: string, id: string | undefined, o: Record<string, string | boolean | undefined>) => {
      const kinds = ['throughput', 'latency', 'sender-audit', 'processes', 'trace', 'mpan', 'journey'];
      if (!kinds.includes(kind)) throw new InvalidArgumentError(`unknown report '${kind}' (one of ${kinds.join(', ')})`);
      if ((kind === 'mpan' || kind === 'journey') && !id) throw new InvalidArgumentError(`${kind} needs the ${kind === 'mpan' ? 'MPAN' : 'transaction ID'}`);
      const query = new URLSearchParams();
      const set = (k: string, v: string | boolean | undefined) => {
        if (typeof v === 'string') query.set(k, v);
      };
      set('from', o.from);
      set('to', o.to);
      set('granularity', o.granularity);
      set('channel', o.channel);
      set('sender', o.sender);
      set('recipient', o.recipient);
      set('transactionId', o.transaction);
      set('correlationId', o.correlation);
      set('channels', o.channels);
      set('linkBy', o.linkBy);
      const path = kind === 'mpan' || kind === 'journey' ? `${kind}/${encodeURIComponent(id ?? '')}` : kind;
      const answer = (await adminCall(loadConfig(), 'GET', `/admin/reports/${path}?${query.toString()}`)) as { rows: Array<Record<string, unknown>> };
      process.stdout.write(o.csv ? toCsv(answer.rows) : `${JSON.stringify(answer, null, 2)}\n`);
    });
}
