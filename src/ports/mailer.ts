/** A file sent with an e-mail (a saved report's CSV). */
export interface MailAttachment {
  filename: string;
  contentType: string;
  content: string;
}

/** E-mail to a person (SMTP in production, src/adapters/mail/smtp-mailer.ts). */
export interface Mailer {
  /** Resolves once the server accepted the message; throws with the reason otherwise (none configured, refused). */
  send(to: string, subject: string, text: string, attachments?: readonly MailAttachment[]): Promise<void>;
  close(): Promise<void>;
}
