import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';

/** A server process `dip cluster` started (and so must stop), with its output in a log file. */
export class ManagedProcess {
  private child: ChildProcess | null = null;
  private log: WriteStream | null = null;
  private exited: Promise<void> = Promise.resolve();
  private lines: Array<(line: string) => void> = [];

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly options: { cwd?: string; env?: NodeJS.ProcessEnv; logFile: string },
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process; resolves once `ready` says so (a log line, or a probe), rejects if it exits first. */
  async start(ready: { line?: RegExp; probe?: () => Promise<boolean>; timeoutMs?: number }): Promise<void> {
    this.log = createWriteStream(this.options.logFile, { flags: 'a' });
    const child = spawn(this.command, this.args, { cwd: this.options.cwd, env: this.options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', () => r()));
    let buffered = '';
    const onData = (chunk: Buffer) => {
      // Output can still arrive after 'exit' (the pipe drains after it), when stop() has ended the log.
      if (this.log?.writable) this.log.write(chunk);
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        for (const l of this.lines) l(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timeoutMs = ready.timeoutMs ?? 60_000;
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        this.lines = this.lines.filter((l) => l !== onLine);
        if (err) reject(err);
        else resolve();
      };
      const onLine = (line: string) => {
        if (ready.line?.test(line)) finish();
      };
      this.lines.push(onLine);
      const timer = setTimeout(() => finish(new Error(`${this.name} was not ready within ${timeoutMs} ms (log: ${this.options.logFile})`)), timeoutMs);
      const poll = setInterval(() => {
        if (ready.probe) void ready.probe().then((ok) => ok && finish(), () => {});
      }, 200);
      child.once('exit', (code, signal) => finish(new Error(`${this.name} exited before it was ready (code ${code}, signal ${signal}; log: ${this.options.logFile})`)));
      if (!ready.line && !ready.probe) finish();
    });
  }

  /** Sends a signal (SIGKILL: a crash, as in the failover tests) and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    this.log?.end();
  }
}

/** Ports nothing listens on now (bound and released: another process could take one meanwhile, rarely). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<Server>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Whether something accepts TCP connections there. */
export function listening(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => done(true));
  });
}
