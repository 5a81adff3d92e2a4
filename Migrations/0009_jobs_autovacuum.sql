-- The queue's table is vacuumed after a fixed number of dead rows, not a fraction of its size.
-- Every reply updates several rows of `jobs` (stored, claimed, acknowledged, and its reply's
-- row), and each update leaves a dead version that the claim's and the acknowledgement's index
-- probes step over until a vacuum removes it. By default a table holding a week of finished jobs
-- would wait for a fifth of itself (millions of rows) to be dead. Unthrottled, because falling
-- behind costs more than the vacuum. How often autovacuum looks at all is the cluster's
-- `autovacuum_naptime`: a trade-off measured in docs/operations.md ("PostgreSQL settings").
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
