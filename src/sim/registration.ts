import { randomBytes } from 'node:crypto';
import { dipDateTime, yyyymmdd } from '../domain/time.js';
import { gspGroupOf } from './messages.js';

export interface ChangeOfSupplierOptions {
  /** The registration service sending it (role REGS); 10 hex digits, as the sender reference needs. */
  senderDipId: string;
  mpan: string;
  distributorDipId: string;
  incomingSupplierDipId: string;
  outgoingSupplierDipId: string;
  /** The first moment the incoming supplier is responsible. */
  effectiveFrom: Date;
  primaryRecipients?: string[];
  uniqueSuffix?: string;
  envTag?: string;
  now?: Date;
}

/**
 * A valid IF-001 [ChangeOfSupplier]: the registration service tells the incoming supplier, the
 * distributor and the market-wide data service that the MPAN changes supplier from a date.
 */
export function buildIF001ChangeOfSupplier(opts: ChangeOfSupplierOptions): unknown {
  const now = opts.now ?? new Date();
  const from = dipDateTime(opts.effectiveFrom);
  const lastDayOfOutgoing = dipDateTime(new Date(opts.effectiveFrom.getTime() - 1000));
  const since = dipDateTime(new Date(Date.UTC(2020, 0, 1)));
  return {
    payload: {
      CommonBlock: commonBlock('IF-001', 'ChangeOfSupplier', opts, now),
      CustomBlock: {
        B013: { CSSRegistrationID: randomBytes(4).toString('hex').toUpperCase() },
        B002: { incomingSupplierDIPID: opts.incomingSupplierDipId, incomingSupplierMPID: 'NEWS', supplierEffectiveFromDate: from },
        B003: { outgoingSupplierDIPID: opts.outgoingSupplierDipId, outgoingSupplierMPID: 'OLDS', supplierEffectiveToDate: lastDayOfOutgoing },
        B004: { domesticPremiseIndicator: true, domesticPremiseIndicatorEffectiveFromDate: since },
        ...siteBlocks(since),
      },
    },
  };
}

/** The metering point's standing data (address, connection, tariff, energisation, segment). */
export function siteBlocks(since: string) {
  return {
    B022: {
      meteringPointPostcode: 'SW1A 2AA',
      addressLine1: '10 Example Street',
      addressLine2: null,
      addressLine3: null,
      addressLine4: null,
      addressLine5: null,
      addressLine6: null,
      addressLine7: null,
      addressLine8: null,
      addressLine9: null,
    },
    B023: { connectionTypeIndicator: 'W', connectionTypeEffectiveFromDate: since, energyDirection: 'I', meteredIndicator: true },
    B024: { DUOSTariffID: '999', DUOSTariffIDEffectiveFromDate: since },
    B025: { energisationStatus: 'E', energisationStatusEffectiveFromDate: since },
    B026: { marketSegmentIndicator: 'S', marketSegmentIndicatorEffectiveFromDate: since },
  };
}

/** What every registration-process message's CommonBlock is made of. */
export interface CommonOptions {
  senderDipId: string;
  /** The role the sender acts in (default REGS, the registration service). */
  senderRole?: string;
  mpan: string;
  distributorDipId: string;
  primaryRecipients?: string[];
  /** S1.senderCorrelationID: the workflow's correlation ID on a follow-on message (spec 5.5.5). */
  correlationId?: string | null;
  uniqueSuffix?: string;
  envTag?: string;
}

export function commonBlock(iface: string, eventCode: string, o: CommonOptions, now: Date) {
  const role = o.senderRole ?? 'REGS';
  return {
    S0: { interfaceID: iface, schemaVersion: '011', eventCode: `[${eventCode}]` },
    S1: {
      environmentTag: o.envTag ?? 'DEV',
      subText: null,
      senderUniqueReference: `S-${iface}-${o.senderDipId}-${role}-${yyyymmdd(now)}-${o.uniqueSuffix ?? randomBytes(8).toString('hex')}`,
      senderTimestamp: dipDateTime(now),
      senderDIPID: o.senderDipId,
      senderRoleID: role,
      senderCorrelationID: o.correlationId ?? null,
      DIPConnectionProviderID: null,
    },
    ...(o.primaryRecipients ? { A0: { primaryRecipients: o.primaryRecipients, secondaryRecipients: [], always: [] } } : {}),
    M0: { MPANCore: o.mpan, distributorDIPID: o.distributorDipId, GSPGroupID: gspGroupOf(o.mpan) },
  };
}

export interface DataServiceAppointmentOptions extends CommonOptions {
  supplierDipId: string;
  dataServiceDipId: string;
  effectiveFrom: Date;
  /** DI-800: COS (change of supplier, the default) or CSP (change of service provider), … */
  appointmentScenario?: string;
  now?: Date;
}

/** A valid IF-036 [DSAppActive]: the registration service confirms a data service's appointment from a date. */
export function buildIF036DataServiceActive(opts: DataServiceAppointmentOptions): unknown {
  const now = opts.now ?? new Date();
  const since = dipDateTime(new Date(Date.UTC(2020, 0, 1)));
  return {
    payload: {
      CommonBlock: commonBlock('IF-036', 'DSAppActive', opts, now),
      CustomBlock: {
        B012: { serviceProviderAppointmentRequestingSupplierDIPID: opts.supplierDipId, serviceProviderAppointmentRequestingSupplierMPID: 'NEWS' },
        B015: {
          incomingDataServiceMPID: 'DATA',
          incomingDataServiceDIPID: opts.dataServiceDipId,
          incomingDataServiceEffectiveFromDate: dipDateTime(opts.effectiveFrom),
          contractReferenceDataService: null,
          appointmentScenario: opts.appointmentScenario ?? 'COS',
          traditionalFallBackReadFrequency: 'M',
        },
        ...siteBlocks(since),
        B028: { domesticPremiseIndicator: true, domesticPremiseIndicatorEffectiveFromDate: since },
      },
    },
  };
}

export interface GainMpanInfoOptions {
  /** The registration service sending it (role REGS); 10 hex digits. */
  senderDipId: string;
  mpan: string;
  distributorDipId: string;
  /** Normally the incoming supplier. */
  primaryRecipients?: string[];
  uniqueSuffix?: string;
  envTag?: string;
  now?: Date;
}

/**
 * A valid IF-002 [GainMPANInfo]: after a change of supplier, the registration service gives the
 * incoming supplier the metering point's standing data (BP001/BP002).
 */
export function buildIF002GainMpanInfo(opts: GainMpanInfoOptions): unknown {
  const now = opts.now ?? new Date();
  const since = dipDateTime(new Date(Date.UTC(2020, 0, 1)));
  return {
    payload: {
      CommonBlock: commonBlock('IF-002', 'GainMPANInfo', opts, now),
      CustomBlock: {
        B013: { CSSRegistrationID: randomBytes(4).toString('hex').toUpperCase() },
        ...siteBlocks(since),
      },
    },
  };
}
