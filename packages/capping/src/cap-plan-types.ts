/** Inputs and outputs of the power-cap advisor. Powers are watts, times seconds from now, sizes bytes. */

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
}

export interface CapHost {
  hostId: string;
  /** The power cap, W, in the same scope as powerW (wall/BMC or RAPL+GPU, the operator chooses). */
  capW: number;
  /** Measured host power now, W (everything: VMs, hypervisor, idle). */
  powerW: number;
  vms: CapVm[];
}

export interface PlanCapsInput {
  hosts: CapHost[];
  /** Migration link bandwidth between any two hosts, BYTES per second (10 GbE = 1.25e9). */
  linkBps: number;
  /** How far ahead the plan looks and its timelines run, s (integer ≥ 1). */
  horizonS: number;
}

export interface ThrottleAction {
  kind: 'throttle';
  hostId: string;
  vmUuid: string;
  tenant: string;
  /** Power to take away from the VM, W. */
  shedW: number;
  /** CPU quota to set as a fraction of what the VM uses now (cgroup cpu.max), assuming its power above minPowerW scales with CPU. */
  cpuQuotaFraction: number;
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
  /** Start to switchover, s (the transient model's estimate). */
  durationS: number;
  /** startS + durationS: the VM's power moves from source to destination here. */
  switchoverS: number;
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

export interface CapPlan {
  actions: CapAction[];
  /** Hosts that are over their cap or touched by an action, with their timelines. */
  hosts: HostPlan[];
  /** True when no affected host's predicted power exceeds its cap in any second of the horizon. */
  safe: boolean;
  horizonS: number;
}
