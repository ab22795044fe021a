import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { adminCall } from './admin-client.js';

/**
 * What an operator on call asks the running DIP first, from the shell of its machine: its health, the
 * alarms that hold, its queues; and the two calls the alarms' actions name (resume a halted queue, forget a
 * node removed for good). Each prints the operator API's answer as JSON; a refusal (health 503 included)
 * prints it on stderr and exits 1, so scripts and probes can act on the exit code.
 */
export function registerOperationsCommands(program: Command): void {
  const call = async (method: 'GET' | 'POST', path: string, body?: unknown): Promise<void> => {
    process.stdout.write(`${JSON.stringify(await adminCall(loadConfig(), method, path, body), null, 2)}\n`);
  };
  program
    .command('health')
    .description("this node's store, coordination, activity log and busy queues (GET /admin/health); exits 1 when it is not ready (operator)")
    .action(() => call('GET', '/admin/health'));
  program
    .command('alarms')
    .description('every alarm that holds now, with what to do about it (GET /admin/alarms) (operator)')
    .action(() => call('GET', '/admin/alarms'));
  const queues = program.command('queues').description("the queues this node delivers and those holding undelivered messages (operator)");
  queues
    .command('list', { isDefault: true })
    .description('each queue with its state, backlog and failures (GET /admin/queues)')
    .action(() => call('GET', '/admin/queues'));
  queues
    .command('resume')
    .description('resume a queue halted by a permanent storage error, once it is repaired (the queue-halted and queue-damage alarms)')
    .requiredOption('--recipient <id>', 'recipient DIP ID')
    .requiredOption('--channel <id>', 'e.g. IF-021')
    .action((o: { recipient: string; channel: string }) => call('POST', '/admin/queues/resume', { recipientDipId: o.recipient, channel: o.channel }));
  program
    .command('node-removed')
    .argument('<node>', 'the node the node-lost alarm names')
    .description('say that a lost cluster node was removed for good: every node stops raising node-lost for it (operator)')
    .action((node: string) => call('POST', `/admin/cluster/nodes/${encodeURIComponent(node)}/removed`, {}));
}
