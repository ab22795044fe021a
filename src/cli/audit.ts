import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { openActivityLog } from '../adapters/backend.js';
import { loadConfig } from '../config.js';
import { exportActivity, verifyActivityLog } from '../pipeline/activity-recorder.js';

const instant = (v: string): number => {
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`'${v}' is not a date or date-time (ISO 8601, e.g. 2026-12-01 or 2026-12-01T10:00:00Z)`);
  return ms;
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
      const store = await openActivityLog(loadConfig());
      try {
        const report = await verifyActivityLog(store);
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        if (!report.ok && report.firstBad) {
          process.stderr.write(`activity log TAMPERED: chain ${report.firstBad.chain}, record ${report.firstBad.seq}: ${report.firstBad.reason}\n`);
          process.exitCode = 1;
        }
      } finally {
        await store.close();
      }
    });
  audit
    .command('export')
    .description('the records received in [--from, --to) as JSON lines, oldest first')
    .requiredOption('--from <when>', 'start (inclusive), ISO 8601', instant)
    .requiredOption('--to <when>', 'end (exclusive), ISO 8601', instant)
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (o: { from: number; to: number; out?: string }) => {
      const store = await openActivityLog(loadConfig());
      const out: Writable = o.out ? createWriteStream(o.out) : process.stdout;
      let n = 0;
      try {
        for await (const r of exportActivity(store, o.from, o.to)) {
          if (!out.write(`${JSON.stringify(r)}\n`)) await new Promise((resolve) => out.once('drain', resolve));
          n += 1;
        }
      } finally {
        await store.close();
        if (o.out) await new Promise((resolve) => out.end(resolve));
      }
      process.stderr.write(`${n} records\n`);
    });
}
