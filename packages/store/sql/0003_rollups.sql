-- Hourly billing rollups fed by materialized views on attributions. A replayed batch carries the same
-- insert_deduplication_token as the first write, so the source insert is dropped and so is the MV's
-- insert into these tables (they carry the same dedup window): rollups see each share once.
-- SummingMergeTree folds rows only at merge time: always read them with sum() ... GROUP BY.
CREATE TABLE IF NOT EXISTS vm_energy_hourly
(
    hour DateTime('UTC'),
    vm_uuid LowCardinality(String),
    vm_name LowCardinality(String),
    tenant LowCardinality(String),
    host LowCardinality(String),
    kind LowCardinality(String),
    source LowCardinality(String),
    method LowCardinality(String),
    dynamic_j Float64,
    static_j Float64,
    low_j Float64,
    high_j Float64,
    shares UInt64
)
ENGINE = SummingMergeTree((dynamic_j, static_j, low_j, high_j, shares))
PARTITION BY toYYYYMM(hour)
ORDER BY (vm_uuid, method, hour, source, kind, tenant, host, vm_name)
TTL hour + INTERVAL {{rollup_retention_days}} DAY
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = {{dedup_window}};

CREATE MATERIALIZED VIEW IF NOT EXISTS vm_energy_hourly_mv TO vm_energy_hourly AS
SELECT
    toStartOfHour(ts) AS hour, vm_uuid, vm_name, tenant, host, kind, source, method,
    sum(dynamic_j) AS dynamic_j, sum(static_j) AS static_j, sum(low_j) AS low_j, sum(high_j) AS high_j,
    count() AS shares
FROM attributions
GROUP BY hour, vm_uuid, vm_name, tenant, host, kind, source, method;

CREATE TABLE IF NOT EXISTS tenant_energy_hourly
(
    hour DateTime('UTC'),
    tenant LowCardinality(String),
    kind LowCardinality(String),
    source LowCardinality(String),
    method LowCardinality(String),
    dynamic_j Float64,
    static_j Float64,
    low_j Float64,
    high_j Float64,
    shares UInt64
)
ENGINE = SummingMergeTree((dynamic_j, static_j, low_j, high_j, shares))
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, method, hour, source, kind)
TTL hour + INTERVAL {{rollup_retention_days}} DAY
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = {{dedup_window}};

CREATE MATERIALIZED VIEW IF NOT EXISTS tenant_energy_hourly_mv TO tenant_energy_hourly AS
SELECT
    toStartOfHour(ts) AS hour, tenant, kind, source, method,
    sum(dynamic_j) AS dynamic_j, sum(static_j) AS static_j, sum(low_j) AS low_j, sum(high_j) AS high_j,
    count() AS shares
FROM attributions
GROUP BY hour, tenant, kind, source, method;
