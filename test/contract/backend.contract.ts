import { archiveContract } from './archive.contract.js';
import { dataKeysContract } from './data-keys.contract.js';
import { deadLettersContract } from './dead-letters.contract.js';
import type { BackendFactory } from './fixtures.js';
import { maintenanceContract } from './maintenance.contract.js';
import { messageLogContract } from './message-log.contract.js';
import { mpanContract } from './mpan.contract.js';
import { publicationIndexContract } from './publications.contract.js';
import { portalAccountsContract } from './portal-accounts.contract.js';
import { registryContract } from './registry.contract.js';
import { requeueJobsContract } from './requeue-jobs.contract.js';
import { savedReportsContract } from './saved-reports.contract.js';
import { mailRecipientsContract } from './mail-recipients.contract.js';
import { tracesContract } from './traces.contract.js';

export type { BackendFactory, OpenedForContract, SyncGate } from './fixtures.js';

/** Every port's contract, for one storage engine. */
export function backendContract(name: string, open: BackendFactory): void {
  messageLogContract(name, open);
  deadLettersContract(name, open);
  archiveContract(name, open);
  registryContract(name, open);
  mpanContract(name, open);
  dataKeysContract(name, open);
  requeueJobsContract(name, open);
  publicationIndexContract(name, open);
  portalAccountsContract(name, open);
  savedReportsContract(name, open);
  mailRecipientsContract(name, open);
  maintenanceContract(name, open);
  tracesContract(name, open);
}
