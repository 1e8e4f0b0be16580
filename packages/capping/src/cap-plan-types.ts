/** Inputs and outputs of the power-cap advisor. Powers are watts, times seconds from now, sizes bytes. */
import type { MigrationMode } from './migration-transient-model.js';

export interface CapVm {
  uuid: string;
  /** The VM's ATTRIBUTED power (dynamic + its static share) from wattsplit's attribution, not a CPU-share guess. */
  powerW: number;
  memoryBytes: number;
  /** Bytes/s the guest dirties (from QEMU's dirty-rate calculation); default: the transient model's. */
  dirtyRateBps?: number;
  tenant: string;
  /** Higher = more important: throttled last. Default 0. */
  priority?: number;
  /** Power a CPU quota cannot take away (memory, devices, its static share), W. Default 10 % of powerW. */
  minPowerW?: number;
  /** False pins the VM to its host (passthrough devices, local disks). Default true. */
  movable?: boolean;
  /** Bytes the guest keeps touching; decides its post-copy slowdown. Default: what it dirties in one second. */
  workingSetBytes?: number;
}

/**
 * How a host can take power away from a VM:
 * - `cpu-quota`: a CPU bandwidth limit (cgroup cpu.max, libvirt vcpu_quota): power above the VM's floor
 *   falls in proportion to its CPU, and so does its work;
 * - `dvfs`: a lower frequency on the cores the VM is pinned to (cpufreq scaling_max_freq): dynamic power
 *   falls as f^dvfsPowerExponent while CPU-bound work falls as f, so the same watts cost less slowdown
 *   (down to dvfsMinFrequency; beyond it the rest is taken by quota).
 */
export type ThrottleMethod = 'cpu-quota' | 'dvfs';

export interface CapHost {
  hostId: string;
  /** The power cap, W, in the same scope as powerW (wall/BMC or RAPL+GPU, the operator chooses). */
  capW: number;
  /** Measured host power now, W (everything: VMs, hypervisor, idle). */
  powerW: number;
  vms: CapVm[];
  /**
   * Every core busy: a pre-copy's CPU work then displaces guest work instead of adding power (the
   * research finding: no extra watts, but the host's power stays up for the whole transfer and the
   * guests are slowed), unless throttles on the host free CPU for it. Default false.
   */
  cpuSaturated?: boolean;
  /** Throttling methods the host offers; `dvfs` is preferred where offered. Default ['cpu-quota']. */
  throttleMethods?: ThrottleMethod[];
  /**
   * Predicted upper bound of the host's power for each second of the horizon, W (a forecast); when
   * given the plan is made against it instead of `powerW` held flat. Length ≥ horizonS.
   */
  forecastW?: number[];
}

/**
 * A power budget above the host: a rack, a PDU, a row, any named set. Its power is the sum of its
 * members' (hosts and other groups, flattened; a host counts once) plus `otherW` (switches, fans, PDU
 * losses that belong to no host). Groups may nest and overlap (a host in a rack and in a PDU).
 */
export interface CapGroup {
  groupId: string;
  /** Free text shown in plans: 'rack', 'pdu', 'row', … */
  kind?: string;
  capW: number;
  /** Host ids and/or group ids. */
  members: string[];
  otherW?: number;
}

export interface PlanCapsInput {
  hosts: CapHost[];
  /** Migration link bandwidth between any two hosts, BYTES per second (10 GbE = 1.25e9). */
  linkBps: number;
  /** How far ahead the plan looks and its timelines run, s (integer ≥ 1). */
  horizonS: number;
  /** Caps above the hosts (racks, PDUs, named groups). */
  groups?: CapGroup[];
}

export interface ThrottleAction {
  kind: 'throttle';
  hostId: string;
  vmUuid: string;
  tenant: string;
  /** Power to take away from the VM, W. */
  shedW: number;
  /** CPU quota to set as a fraction of what the VM uses now (cgroup cpu.max), assuming its power above minPowerW scales with CPU; 1 when method is dvfs. */
  cpuQuotaFraction: number;
  method: ThrottleMethod;
  /** dvfs only: the frequency cap as a fraction of the VM's cores' maximum frequency. */
  frequencyFraction?: number;
  /** Fraction of the VM's work lost while the throttle holds. */
  slowdown: number;
  /** Integer seconds: from, and until (exclusive; null = until the end of the horizon / further notice). */
  fromS: number;
  untilS: number | null;
  reason: string;
}

export interface MigrateAction {
  kind: 'migrate';
  vmUuid: string;
  tenant: string;
  fromHostId: string;
  toHostId: string;
  /** Start, integer s. */
  startS: number;
  mode: MigrationMode;
  /** Bytes/s to allow the migration (libvirt migrate --bandwidth), before link efficiency. */
  bandwidthBps: number;
  /** Start to the end of the transfer, s (the transient model's estimate). */
  durationS: number;
  /** The VM's power moves from source to destination here: startS + durationS for pre-copy, startS + setup + ~0.12 s for post-copy. */
  switchoverS: number;
  /** startS + durationS: the copy's extra watts stop here. */
  endS: number;
  /** The earliest the VM can run on the destination (estimates can be long): the destination counts its power from here. */
  arriveS: number;
  /** Fraction of the migrating VM's work lost over slowedS seconds, and its pause at switchover. */
  slowdown: number;
  slowedS: number;
  downtimeS: number;
  /** The migration's SLA cost, VM·s of lost work (weighted by 1 + priority). */
  slaCost: number;
  /** The VM's full attributed power that moves, W. */
  vmPowerW: number;
  sourceExtraW: number;
  destinationExtraW: number;
  rounds: number;
  transferredBytes: number;
  reason: string;
}

export type CapAction = ThrottleAction | MigrateAction;

export type HostPlanStatus =
  /** Under its cap now and throughout the plan. */
  | 'within-cap'
  /** Over its cap; a migration alone brings it under, the transient fits under the cap. */
  | 'migrate'
  /** Over its cap; throttled first so the migration transient stays under the cap, then migrated (throttles lifted at switchover). */
  | 'throttle-then-migrate'
  /** Over its cap; no migration is safe or worth it: throttled. */
  | 'throttle'
  /** Receives a migrated VM. */
  | 'destination'
  /** Over its cap and even throttling every VM to its floor does not bring it under. */
  | 'infeasible';

export interface HostPlan {
  hostId: string;
  capW: number;
  powerW: number;
  status: HostPlanStatus;
  /** Predicted power for each second [t, t+1) of the horizon, W: the highest the host can draw in that second under the plan. */
  timelineW: number[];
  peakW: number;
  /** Seconds whose predicted power is above the cap. */
  overCapSeconds: number;
  /** Why this plan and not another (rejected migrations with their reason). */
  notes: string[];
}

export interface GroupPlan {
  groupId: string;
  kind: string;
  capW: number;
  /** The hosts the group's power is summed over. */
  hostIds: string[];
  /** 'within-cap' (untouched or kept under), or how the advisor brought it under its cap. */
  status: 'within-cap' | 'throttle' | 'throttle-then-migrate' | 'infeasible';
  timelineW: number[];
  peakW: number;
  overCapSeconds: number;
  notes: string[];
}

export interface CapPlan {
  actions: CapAction[];
  /** Hosts that are over their cap or touched by an action, with their timelines. */
  hosts: HostPlan[];
  /** Every group, with its timeline under the plan. */
  groups: GroupPlan[];
  /** True when no host's and no group's predicted power exceeds its cap in any second of the horizon. */
  safe: boolean;
  horizonS: number;
  /** The plan's SLA cost, VM·s of lost work weighted by 1 + priority (throttle slowdown × seconds, migration slowdown × seconds + downtime). */
  slaCost: number;
  /** W kept free under every cap. */
  marginW: number;
}
