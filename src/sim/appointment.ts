import { randomBytes } from 'node:crypto';
import { dipDateTime } from '../domain/time.js';
import { buildIF036DataServiceActive, commonBlock, siteBlocks, type CommonOptions } from './registration.js';

/**
 * The data service appointment workflow (spec 3.4.1, BP02 appointment of a service provider), one
 * builder per step. A supplier asks the registration service to appoint a data service (IF-031, which
 * opens the workflow: the DIP gives it a correlation ID); the registration service acknowledges
 * (IF-032) and asks the proposed data service (IF-033), which answers (IF-034); the registration
 * service tells the outcome (IF-035) and, when accepted, confirms the appointment (IF-036) and
 * de-appoints the previous data service (IF-037). Every follow-on carries the workflow's correlation ID
 * in S1.senderCorrelationID.
 */
export interface DataServiceProposal {
  supplierDipId: string;
  /** The data service the supplier proposes. */
  proposedDipId: string;
  /** From when it is to be appointed. */
  effectiveFrom: Date;
}

export type StepOptions = CommonOptions & DataServiceProposal & { now?: Date };

const SINCE = dipDateTime(new Date(Date.UTC(2020, 0, 1)));

/** B071: the proposed data service appointment, carried by every step up to the outcome. */
function proposal(o: DataServiceProposal) {
  return {
    proposedDataServiceDIPID: o.proposedDipId,
    proposedDataServiceMPID: 'DATA',
    proposedDataServiceDIPEffectiveFromDate: dipDateTime(o.effectiveFrom),
    contractReferenceDataService: null,
    appointmentScenario: 'CSP',
    supplierNominatedMDRDIPID: null,
    supplierNominatedMDRMPID: null,
    supplierNominatedMDREffectiveFromDate: null,
    supplierProposedConsentGranularity: 'H',
    supplierProposedDomesticIndicator: true,
    traditionalFallBackReadFrequency: 'M',
  };
}

/** B012: the supplier that asked for the appointment. */
const requestingSupplier = (o: DataServiceProposal) => ({ serviceProviderAppointmentRequestingSupplierDIPID: o.supplierDipId, serviceProviderAppointmentRequestingSupplierMPID: 'SUPP' });
const css = () => ({ CSSRegistrationID: randomBytes(4).toString('hex').toUpperCase() });
const message = (iface: string, eventCode: string, o: StepOptions, custom: Record<string, unknown>) => ({
  payload: { CommonBlock: commonBlock(iface, eventCode, o, o.now ?? new Date()), CustomBlock: custom },
});

/** IF-031 [DSApp]: the supplier (role SUP) asks the registration service to appoint a data service. */
export function buildIF031DataServiceRequest(o: StepOptions): unknown {
  return message('IF-031', 'DSApp', { ...o, senderRole: 'SUP' }, { B013: css(), B071: proposal(o) });
}

/** IF-032 [DSAppInitialResp]: the registration service acknowledges the request to the supplier. */
export function buildIF032InitialResponse(o: StepOptions): unknown {
  return message('IF-032', 'DSAppInitialResp', o, { B013: css(), B071: proposal(o) });
}

/** IF-033 [DSAppSPRequest]: the registration service asks the proposed data service, with the site's data. */
export function buildIF033ServiceProviderRequest(o: StepOptions): unknown {
  return message('IF-033', 'DSAppSPRequest', o, { B012: requestingSupplier(o), B013: css(), B071: proposal(o), ...siteBlocks(SINCE) });
}

/** IF-034 [DSAppSPResponse]: the proposed data service (its own role) accepts or rejects. */
export function buildIF034ServiceProviderResponse(o: StepOptions & { accept: boolean }): unknown {
  return message('IF-034', 'DSAppSPResponse', o, {
    B007: { responseCode: o.accept ? 'A' : 'R', proposedAppointmentResponseCode: o.accept ? null : 'No capacity for this metering point' },
    B012: requestingSupplier(o),
    B071: proposal(o),
  });
}

/** IF-035 [DSAppAccepted] / [DSAppRejected]: the registration service tells the outcome. */
export function buildIF035AppointmentStatus(o: StepOptions & { accept: boolean }): unknown {
  return message('IF-035', o.accept ? 'DSAppAccepted' : 'DSAppRejected', o, {
    B007: { responseCode: o.accept ? 'A' : 'R', proposedAppointmentResponseCode: null },
    B012: requestingSupplier(o),
    B071: proposal(o),
  });
}

/** IF-036 [DSAppActive]: the appointment is confirmed from its effective date (the MPAN lookup learns it). */
export function buildIF036AppointmentActive(o: StepOptions): unknown {
  return buildIF036DataServiceActive({ ...o, dataServiceDipId: o.proposedDipId, appointmentScenario: 'CSP' });
}

/** IF-037 [DSDeApp]: the previous data service is de-appointed the moment before the new one starts. */
export function buildIF037DataServiceDeAppointment(o: StepOptions & { previousDipId: string }): unknown {
  return message('IF-037', 'DSDeApp', o, {
    B013: css(),
    B009: {
      deAppointedDataServiceDIPID: o.previousDipId,
      deAppointedDataServiceMPID: 'DATA',
      dataServiceEffectiveFromDate: SINCE,
      dataServiceEffectiveToDate: dipDateTime(new Date(o.effectiveFrom.getTime() - 1000)),
      deAppointmentReasonCode: 'CSERV',
    },
  });
}
