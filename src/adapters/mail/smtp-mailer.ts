import nodemailer from 'nodemailer';
import type { MailAttachment, Mailer } from '../../ports/mailer.js';

export interface SmtpSettings {
  host: string;
  port: number;
  /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it. */
  secure: boolean;
  user: string | null;
  pass: string | null;
  from: string;
  /** Refuse to send without STARTTLS (production). */
  requireTLS: boolean;
}

/**
 * The DIP's e-mail over SMTP (nodemailer), through the one server configured (observability.alarms.smtp):
 * alarm and maintenance notices, onboarding links and answers, saved reports. Without settings every message is refused
 * with the reason.
 */
export class SmtpMailer implements Mailer {
  private readonly transport: nodemailer.Transporter | null;

  constructor(private readonly smtp: SmtpSettings | null) {
    this.transport = smtp
      ? nodemailer.createTransport({
          host: smtp.host,
          port: smtp.port,
          secure: smtp.secure,
          requireTLS: smtp.requireTLS,
          // Well under the 10 minutes a claimed send (maintenance notices, saved reports) is held before another
          // node may take it over: nodemailer's own defaults (2 min to connect, 10 min of socket inactivity)
          // let a stalled relay outlive the claim, and the e-mail go twice (reviewA).
          connectionTimeout: 30_000,
          greetingTimeout: 30_000,
          socketTimeout: 60_000,
          ...(smtp.user !== null ? { auth: { user: smtp.user, pass: smtp.pass ?? '' } } : {}),
        })
      : null;
  }

  async send(to: string, subject: string, text: string, attachments: readonly MailAttachment[] = []): Promise<void> {
    if (!this.transport || !this.smtp) throw new Error('no SMTP server is configured (observability.alarms.smtp)');
    await this.transport.sendMail({ from: this.smtp.from, to, subject, text, ...(attachments.length ? { attachments: attachments.map((a) => ({ ...a })) } : {}) });
  }

  close(): Promise<void> {
    this.transport?.close();
    return Promise.resolve();
  }
}
