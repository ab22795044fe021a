import type { AddressInfo } from 'node:net';
import { DEFAULTS, type DipConfig } from '../../src/config.js';
import { SMTPServer } from 'smtp-server';

export interface Mail {
  from: string;
  to: string[];
  data: string;
}

export interface TestSmtp {
  port: number;
  mails: Mail[];
  close(): Promise<void>;
  /** Messages whose DATA was received but not yet answered (only when started holding). */
  held(): number;
  /** Answers every message held and every one to come (only when started holding). */
  release(): void;
}

/**
 * A real SMTP server on an ephemeral port that keeps every message it is given. `holding`: a slow relay,
 * each message's DATA left unanswered (and not kept) until release().
 */
export async function startSmtp(options: { holding?: boolean } = {}): Promise<TestSmtp> {
  const mails: Mail[] = [];
  let waiting: Array<() => void> | null = options.holding ? [] : null;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const keep = () => {
          mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data: Buffer.concat(chunks).toString('utf8') });
          callback();
        };
        if (waiting) waiting.push(keep);
        else keep();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.server.address() as AddressInfo).port,
    mails,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    held: () => waiting?.length ?? 0,
    release: () => {
      const held = waiting ?? [];
      waiting = null;
      for (const keep of held) keep();
    },
  };
}

/** The DIP's settings that send its e-mail (alarms, onboarding, maintenance notices) to a test SMTP server. */
export const mailingTo = (smtp: TestSmtp): Pick<DipConfig, 'observability'> => ({
  observability: { ...DEFAULTS.observability, alarms: { ...DEFAULTS.observability.alarms, smtp: { host: '127.0.0.1', port: smtp.port, secure: false, requireTLS: false, user: null, pass: null, from: 'dip@example.net' } } },
});
