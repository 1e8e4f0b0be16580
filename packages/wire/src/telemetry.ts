/** Friendly names for the generated wire types (wattsplit.telemetry.v1). */
import protobuf from 'protobufjs/minimal.js';
import { wattsplit } from '../generated/telemetry.js';
import { installVarint64Readers } from './varint64-reader.js';

// 64-bit fields are plain numbers (exact below 2^53: 9e9 J in µJ, 104 days in ns of monotonic time;
// beyond that they lose sub-µs precision, which 1 Hz sampling never needs). No Long objects anywhere.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();
// …and read without a LongBits object per field (varint64-reader.ts).
installVarint64Readers();

export const v1 = wattsplit.telemetry.v1;

export const TelemetryFrame = v1.TelemetryFrame;
export type TelemetryFrame = wattsplit.telemetry.v1.TelemetryFrame;
export type ITelemetryFrame = wattsplit.telemetry.v1.ITelemetryFrame;
export const FrameBatch = v1.FrameBatch;
export type FrameBatch = wattsplit.telemetry.v1.FrameBatch;
export type IFrameBatch = wattsplit.telemetry.v1.IFrameBatch;
export const BatchAck = v1.BatchAck;
export type BatchAck = wattsplit.telemetry.v1.BatchAck;
export type IBatchAck = wattsplit.telemetry.v1.IBatchAck;
export type IFrameRejection = wattsplit.telemetry.v1.IFrameRejection;
export type IEnergyCounter = wattsplit.telemetry.v1.IEnergyCounter;
export type IVmSample = wattsplit.telemetry.v1.IVmSample;
export type IGpuActivity = wattsplit.telemetry.v1.IGpuActivity;
export type IGpuDeviceSample = wattsplit.telemetry.v1.IGpuDeviceSample;
export type IPerfCounters = wattsplit.telemetry.v1.IPerfCounters;
export type IHostCpu = wattsplit.telemetry.v1.IHostCpu;
export const AttributionRecord = v1.AttributionRecord;
export type AttributionRecord = wattsplit.telemetry.v1.AttributionRecord;
export type IAttributionRecord = wattsplit.telemetry.v1.IAttributionRecord;
export const AttributionBatch = v1.AttributionBatch;
export type AttributionBatch = wattsplit.telemetry.v1.AttributionBatch;
export type IAttributionBatch = wattsplit.telemetry.v1.IAttributionBatch;

export const EnergySource = v1.EnergySource;
export type EnergySource = wattsplit.telemetry.v1.EnergySource;
export const EnergyUnit = v1.EnergyUnit;
export type EnergyUnit = wattsplit.telemetry.v1.EnergyUnit;
export const VmState = v1.VmState;
export type VmState = wattsplit.telemetry.v1.VmState;
export const AckStatus = v1.AckStatus;
export type AckStatus = wattsplit.telemetry.v1.AckStatus;
export const EntityKind = v1.EntityKind;
export type EntityKind = wattsplit.telemetry.v1.EntityKind;

/** Power-cap watch (proto/wattsplit/capping/v1/capping.proto): one CapStatus per cap, keyed by its id. */
export const CapStatus = wattsplit.capping.v1.CapStatus;
export type CapStatus = wattsplit.capping.v1.CapStatus;
export type ICapStatus = wattsplit.capping.v1.ICapStatus;
export type ICapActionRecord = wattsplit.capping.v1.ICapActionRecord;

/** Versioned topic names (Kafka in fleet mode, the in-process bus when embedded). */
export const TOPICS = {
  telemetry: 'wattsplit.telemetry.v1',
  attribution: 'wattsplit.attribution.v1',
  capping: 'wattsplit.capping.v1',
  deadLetter: 'wattsplit.telemetry.v1.dlq',
} as const;

/** Multiplier from a counter's native unit to joules. */
export function joulesPerUnit(unit: EnergyUnit | null | undefined): number {
  switch (unit) {
    case v1.EnergyUnit.ENERGY_UNIT_MICROJOULE:
      return 1e-6;
    case v1.EnergyUnit.ENERGY_UNIT_MILLIJOULE:
      return 1e-3;
    case v1.EnergyUnit.ENERGY_UNIT_JOULE:
      return 1;
    case v1.EnergyUnit.ENERGY_UNIT_UNSPECIFIED:
    case null:
    case undefined:
      return Number.NaN;
  }
}
