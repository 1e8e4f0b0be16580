-- One row per share: (host interval, source, method, entity). The key makes a replayed interval
-- collapse into one row (ReplacingMergeTree); reads that must be exact use FINAL.
CREATE TABLE IF NOT EXISTS attributions
(
    host LowCardinality(String),
    seq UInt64 CODEC(Delta, ZSTD),
    t0_ns Int64 CODEC(DoubleDelta, ZSTD),
    t1_ns Int64 CODEC(DoubleDelta, ZSTD),
    ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(t1_ns, 1000000000), 'UTC'),
    kind LowCardinality(String),
    vm_uuid LowCardinality(String),
    vm_name LowCardinality(String),
    tenant LowCardinality(String),
    source LowCardinality(String),
    dynamic_j Float64 CODEC(Gorilla, ZSTD),
    static_j Float64 CODEC(Gorilla, ZSTD),
    low_j Float64 CODEC(Gorilla, ZSTD),
    high_j Float64 CODEC(Gorilla, ZSTD),
    measured_j Float64 CODEC(Gorilla, ZSTD),
    method LowCardinality(String),
    model_version LowCardinality(String),
    hardware_class LowCardinality(String),
    note String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (host, seq, method, source, kind, vm_uuid)
TTL ts + INTERVAL {{attribution_retention_days}} DAY
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = {{dedup_window}};
