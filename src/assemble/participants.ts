import { ExternalCrlWatcher } from '../security/external-crl.js';
import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import type { ChannelSettings } from '../pipeline/channel-settings.js';
import { ParticipantLifecycle } from '../pipeline/participant-lifecycle.js';
import type { Registry } from '../pipeline/registry.js';
import { SelfService } from '../pipeline/self-service.js';
import { RegisterPull } from '../pipeline/register-pull.js';
import { HttpRegisterSource } from '../adapters/http/register-client.js';
import { WebhookDestinations } from '../security/webhook-destinations.js';
import type { LookupFunction } from 'node:net';
import type { Backend } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import { issueParticipantCertificate, readCertificateAuthority } from '../security/pki.js';
import { revokeCertificate } from '../security/revocation.js';
import type { TrustStore } from '../security/trust-store.js';

export interface ParticipantParts {
  config: DipConfig;
  pkiDir: string;
  trust: TrustStore;
  backend: Backend;
  registry: Registry;
  channelSettings: ChannelSettings;
  clock: Clock;
  logger: Logger;
  life: Lifecycle;
  /** A registration changed: queues are swept again (delivery may now reach, or no longer reach, them). */
  registrationChanged: () => void;
  /** Name resolution for the register endpoint's destination checks (dns.lookup by default). */
  lookup?: LookupFunction;
}

/**
 * Who may connect and what participants change themselves: certificate revocation, the central register
 * feed and offboarding, and self-service (README "Participants without outage"). The register feed starts
 * with delivery (`lifecycle.start()`), once the listeners are up.
 */
export async function assembleParticipants({ config, pkiDir, trust, backend, registry, channelSettings, clock, logger, life, registrationChanged, lookup }: ParticipantParts) {
  if (trust.builtIn && config.crlFiles.length > 0) throw new Error('crlFiles: set without trustedCaFiles (they are the CRLs of those CAs; the built-in CA\'s own CRL is made by `dip pki revoke`)');
  let externalCrls: ExternalCrlWatcher | null = null;
  if (!trust.builtIn) {
    logger.info(
      { trustedCaFiles: config.trustedCaFiles, crlFiles: config.crlFiles, cas: trust.cas.length },
      config.crlFiles.length > 0
        ? 'client certificates are verified against trustedCaFiles and their CRLs (crlFiles)'
        : 'client certificates are verified against trustedCaFiles; no CRL of those CAs is checked (crlFiles is empty): only the certificates `dip pki revoke` lists are refused, per request',
    );
    if (config.crlFiles.length > 0) {
      externalCrls = await ExternalCrlWatcher.open(config.crlFiles, trust.cas, clock, logger);
      externalCrls.start(config.revocationPollMs);
      const watcher = externalCrls;
      life.started('external CRL watcher', () => watcher.stop());
    }
  }
  const lifecycle = new ParticipantLifecycle({
    registry,
    store: backend.registry,
    journal: backend.journal,
    clock,
    logger,
    revoke: async (pem, reason, actor) => {
      try {
        await revokeCertificate(pkiDir, backend.registry, pem, reason, new Date(), actor);
        return true;
      } catch (err) {
        logger.warn({ err }, 'a participant\'s certificate could not be revoked here (not from this environment\'s CA): it is refused per request');
        return false;
      }
    },
    afterChange: registrationChanged,
  });
  const selfService = new SelfService({
    registry,
    lifecycle,
    store: backend.registry,
    journal: backend.journal,
    now: () => clock.now(),
    optionalRoles: () => lifecycle.optionalRoles(),
    optInChannels: () => channelSettings.list().filter((c) => c.optIn && c.state !== 'withdrawn').map((c) => c.channel),
    issueCertificate: (csrPem, dipId, organisation) => issueCertificate(pkiDir, config, csrPem, dipId, organisation),
    trustedCaPems: () => trust.cas,
  });
  // The register's endpoint is the operator's, yet never on internal networks unless listed (SSRF), in every environment.
  const registerDestinations = new WebhookDestinations({ enforce: true, allowList: config.register.allowList, lookup });
  const registerPull = new RegisterPull({ source: new HttpRegisterSource(registerDestinations, config.register.maxFeedMb * 1_048_576), lifecycle, journal: backend.journal, clock, logger });
  return { externalCrls, lifecycle, selfService, registerPull };
}

/** A participant certificate for a CSR, from this environment's CA (self-service and the user portal). */
export async function issueCertificate(pkiDir: string, config: DipConfig, csrPem: string, dipId: string, organisation: string): Promise<string> {
  // issueParticipantCertificate makes a key of its own when given no CSR; here only the certificate is
  // handed back, so that key would be thrown away and the participant left a certificate nobody can use.
  if (csrPem.trim() === '') throw new Error('no CSR was given: a certificate is issued for the key of a certificate signing request');
  const ca = await readCertificateAuthority(pkiDir);
  return (await issueParticipantCertificate(ca, { organisation, dipIds: [dipId], environment: config.environment, validDays: 365, csrPem })).certPem;
}
