import nodemailer from 'nodemailer';
import { request } from 'undici';
import type { AlarmChannel, AlarmNotice } from '../../ports/alarms.js';

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
 * Alarm notices by e-mail over SMTP (nodemailer) and by webhook (a JSON POST). Without SMTP settings
 * e-mail subscriptions are refused at sending time with the reason logged.
 */
export class SmtpAlarmChannel implements AlarmChannel {
  private readonly transport: nodemailer.Transporter | null;

  constructor(private readonly smtp: SmtpSettings | null) {
    this.transport = smtp
      ? nodemailer.createTransport({
          host: smtp.host,
          port: smtp.port,
          secure: smtp.secure,
          requireTLS: smtp.requireTLS,
          ...(smtp.user !== null ? { auth: { user: smtp.user, pass: smtp.pass ?? '' } } : {}),
        })
      : null;
  }

  async email(to: string, subject: string, text: string): Promise<void> {
    if (!this.transport || !this.smtp) throw new Error('no SMTP server is configured (observability.alarms.smtp)');
    await this.transport.sendMail({ from: this.smtp.from, to, subject, text });
  }

  async webhook(url: string, notice: AlarmNotice): Promise<void> {
    const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(notice), headersTimeout: 10_000, bodyTimeout: 10_000 });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`alarm webhook ${url} answered ${res.statusCode}`);
  }

  close(): Promise<void> {
    this.transport?.close();
    return Promise.resolve();
  }
}
