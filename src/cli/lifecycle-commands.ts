import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { adminCall } from './admin-client.js';

const print = (v: unknown): void => {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
};
const call = async (method: Parameters<typeof adminCall>[1], path: string, body?: unknown): Promise<void> => print(await adminCall(loadConfig(), method, path, body));
const query = (o: Record<string, string | number | undefined>): string => {
  const q = new URLSearchParams(Object.entries(o).filter((e): e is [string, string | number] => e[1] !== undefined).map(([k, v]) => [k, String(v)]));
  return q.size ? `?${q.toString()}` : '';
};

/** The dip commands of participant and channel lifecycle, operators and the journal (all need the running DIP). */
export function registerLifecycleCommands(program: Command): void {
  registerOperatorCommands(program);
}

/** Operator accounts and the journal. */
function registerOperatorCommands(program: Command): void {
  const op = program.command('operator').description('operator accounts (admin; needs the running DIP). Authenticate with DIP_OPERATOR_TOKEN, else the bootstrap token');
  op.command('list').action(() => call('GET', '/admin/operators'));
  op.command('whoami').action(() => call('GET', '/admin/whoami'));
  op
    .command('add')
    .description('create a named operator account and print its token (shown once)')
    .requiredOption('--name <name>', 'the person, e.g. alice')
    .requiredOption('--role <role>', 'viewer, operator or admin')
    .action((o: { name: string; role: string }) => call('POST', '/admin/operators', { name: o.name, role: o.role }));
  op
    .command('set')
    .description("change an operator's role, disable or enable the account, or issue a new token (the old one stops at once)")
    .argument('<name>')
    .option('--role <role>', 'viewer, operator or admin')
    .option('--disable', 'the account can no longer call')
    .option('--enable', 'the account can call again')
    .option('--new-token', 'issue a new token (printed once)')
    .action((name: string, o: { role?: string; disable?: boolean; enable?: boolean; newToken?: boolean }) =>
      call('PATCH', `/admin/operators/${encodeURIComponent(name)}`, {
        ...(o.role ? { role: o.role } : {}),
        ...(o.disable ? { disabled: true } : o.enable ? { disabled: false } : {}),
        ...(o.newToken ? { newToken: true } : {}),
      }),
    );
  program
    .command('journal')
    .description('every administrative act: who, what, on what, when, before and after (newest first)')
    .option('--actor <actor>', 'e.g. operator:alice, bootstrap, register:file, participant:1000000001')
    .option('--action <action>', 'e.g. channel.pause')
    .option('--target <target>', 'e.g. IF-021 or a DIP ID')
    .option('--limit <n>', 'how many', '100')
    .action((o: { actor?: string; action?: string; target?: string; limit: string }) => call('GET', `/admin/journal${query({ actor: o.actor, action: o.action, target: o.target, limit: o.limit })}`));
}
