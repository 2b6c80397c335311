-- The central PostgreSQL of a chain of stores: what `rayon central` writes.
-- `rayon central` creates and upgrades this schema itself (gateway/central/schema.py); this
-- file is the same schema for a database administrator who creates it by hand, version 1.
-- tests/test_central_deploy.py keeps the two equal.

CREATE TABLE chain_records (
    store       varchar(64)      NOT NULL,
    seq         bigint           NOT NULL,
    kind        varchar(16)      NOT NULL,
    at          double precision NOT NULL,
    customer    varchar(200),
    device      varchar(200),
    body        jsonb            NOT NULL,
    received_at double precision NOT NULL,
    PRIMARY KEY (store, seq)
);
CREATE INDEX ix_chain_records_at ON chain_records (at);
CREATE INDEX ix_chain_records_customer ON chain_records (store, customer);
CREATE INDEX ix_chain_records_device ON chain_records (store, device);
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
