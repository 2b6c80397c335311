-- The central schema with chain_records in monthly partitions (deploy/central/README.md,
-- "Sizing for 1,000 stores"): for a DBA who creates it by hand instead of schema.sql, before
-- the first `rayon central` starts (which then finds version 1 and changes nothing).
-- The key becomes (store, seq, at): still one row per record, because a record's `at` never
-- changes, so a copy always lands in the same partition. Retention drops a month's partition
-- (`DROP TABLE chain_records_2026_01`) instead of deleting rows.
-- Create each month's partition ahead, e.g. from cron on the 20th:
--     SELECT rayon_chain_partition(date_trunc('month', now() + interval '1 month')::date);
-- tests/test_central_deploy.py runs the collector on this schema.

CREATE TABLE chain_records (
    store       varchar(64)      NOT NULL,
    seq         bigint           NOT NULL,
    kind        varchar(16)      NOT NULL,
    at          double precision NOT NULL,
    customer    varchar(200),
    device      varchar(200),
    body        jsonb            NOT NULL,
    received_at double precision NOT NULL,
    PRIMARY KEY (store, seq, at)
) PARTITION BY RANGE (at);
CREATE INDEX ix_chain_records_at ON chain_records (at);
CREATE INDEX ix_chain_records_customer ON chain_records (store, customer);
CREATE INDEX ix_chain_records_device ON chain_records (store, device);
-- whatever no month's partition takes (a store's clock far off): never a failed write
CREATE TABLE chain_records_default PARTITION OF chain_records DEFAULT;

CREATE FUNCTION rayon_chain_partition(month date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    lo double precision := extract(epoch from (date_trunc('month', month) AT TIME ZONE 'UTC'));
    hi double precision := extract(epoch from ((date_trunc('month', month) + interval '1 month') AT TIME ZONE 'UTC'));
BEGIN
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF chain_records FOR VALUES FROM (%s) TO (%s)',
        'chain_records_' || to_char(month, 'YYYY_MM'), lo, hi
    );
END
$$;

CREATE TABLE chain_marks (
    store      varchar(64)      PRIMARY KEY,
    hwm        bigint           NOT NULL,
    updated_at double precision NOT NULL,
    backfills  bigint           NOT NULL DEFAULT 0
);
CREATE TABLE chain_ranges (
    store varchar(64) NOT NULL,
    lo    bigint      NOT NULL,
    hi    bigint      NOT NULL,
    seen  double precision NOT NULL,
    PRIMARY KEY (store, lo)
);
CREATE TABLE rayon_central_schema (
    version    integer          PRIMARY KEY,
    summary    varchar(200)     NOT NULL,
    applied_at double precision NOT NULL
);
INSERT INTO rayon_central_schema VALUES
    (1, 'records, marks and pending ranges of every store', extract(epoch from now()));
