-- Raw per host-interval and per VM-interval samples, as aligned by the collector (deltas, joules, seconds).
-- One row per (host, seq) / (host, seq, vm): ReplacingMergeTree collapses replays; read with FINAL.
-- ts is derived from t1_ns (the interval end) so it cannot disagree with it; it drives partitions and TTL.
CREATE TABLE IF NOT EXISTS host_samples
(
    host LowCardinality(String),
    hardware_class LowCardinality(String),
    boot_id String,
    seq UInt64 CODEC(Delta, ZSTD),
    prev_seq UInt64 CODEC(Delta, ZSTD),
    t0_ns Int64 CODEC(DoubleDelta, ZSTD),
    t1_ns Int64 CODEC(DoubleDelta, ZSTD),
    ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC'),
    duration_s Float64 CODEC(Gorilla, ZSTD),
    rapl_j Float64 CODEC(Gorilla, ZSTD),
    gpu_j Float64 CODEC(Gorilla, ZSTD),
    bmc_rest_j Float64 CODEC(Gorilla, ZSTD),
    rapl_zone_ids Array(String),
    rapl_zone_j Array(Float64),
    gpu_devices Array(String),
    gpu_j_by_device Array(Float64),
    gpu_contexts Array(UInt32),
    gpu_mean_power_w Array(Float64),
    gpu_util_pct Array(Float64),
    gpu_mem_util_pct Array(Float64),
    gpu_sm_clock_mhz Array(Float64),
    cpu_busy_s Float64 CODEC(Gorilla, ZSTD),
    cpu_idle_s Float64 CODEC(Gorilla, ZSTD),
    online_cpus UInt32,
    avg_freq_mhz Float64 CODEC(Gorilla, ZSTD),
    counter_ids Array(String),
    counter_sources Array(String),
    counter_units Array(String),
    counter_values Array(UInt64),
    anomaly_count UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (host, seq)
TTL ts + INTERVAL {{raw_retention_days}} DAY
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = {{dedup_window}};

CREATE TABLE IF NOT EXISTS vm_samples
(
    host LowCardinality(String),
    hardware_class LowCardinality(String),
    seq UInt64 CODEC(Delta, ZSTD),
    t0_ns Int64 CODEC(DoubleDelta, ZSTD),
    t1_ns Int64 CODEC(DoubleDelta, ZSTD),
    ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC'),
    vm_uuid LowCardinality(String),
    vm_name LowCardinality(String),
    tenant LowCardinality(String),
    state LowCardinality(String),
    presence Float64 CODEC(Gorilla, ZSTD),
    vcpus UInt32,
    memory_bytes UInt64,
    cpu_s Float64 CODEC(Gorilla, ZSTD),
    vcpu_s Array(Float64),
    memory_used_bytes UInt64 CODEC(Delta, ZSTD),
    block_read_bytes UInt64 CODEC(Delta, ZSTD),
    block_write_bytes UInt64 CODEC(Delta, ZSTD),
    net_rx_bytes UInt64 CODEC(Delta, ZSTD),
    net_tx_bytes UInt64 CODEC(Delta, ZSTD),
    perf_supported UInt8,
    cycles UInt64 CODEC(Delta, ZSTD),
    instructions UInt64 CODEC(Delta, ZSTD),
    llc_misses UInt64 CODEC(Delta, ZSTD),
    llc_references UInt64 CODEC(Delta, ZSTD),
    gpu_devices Array(String),
    gpu_sm_util_pct Array(Float64),
    gpu_mem_util_pct Array(Float64),
    gpu_util_samples Array(UInt32),
    gpu_used_memory_bytes Array(UInt64),
    gpu_holds_context Array(UInt8),
    gpu_passthrough Array(UInt8)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (host, seq, vm_uuid)
TTL ts + INTERVAL {{raw_retention_days}} DAY
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = {{dedup_window}};

CREATE TABLE IF NOT EXISTS anomalies
(
    host LowCardinality(String),
    seq UInt64,
    t1_ns Int64 CODEC(DoubleDelta, ZSTD),
    ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC'),
    code LowCardinality(String),
    counter_id String,
    vm_uuid String,
    message String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (host, seq, code, counter_id, vm_uuid)
TTL ts + INTERVAL {{raw_retention_days}} DAY
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = {{dedup_window}};
