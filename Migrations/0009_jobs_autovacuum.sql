-- The queue's table is vacuumed after a fixed number of dead rows, not a fraction of its size.
-- Every reply updates several rows of `jobs` (stored, claimed, acknowledged, and its reply's
-- row), and each update leaves a dead version that the claim's and the acknowledgement's index
-- probes step over until a vacuum removes it. By default a table holding a week of finished jobs
-- would wait for a fifth of itself (millions of rows) to be dead. Measured side of this: in
-- `aisha bench bot` at 750 updates/s, vacuuming `jobs` as often as it needs
-- (`autovacuum_naptime = 1s`) left no run slow (5 of 5; with the default minute, 2 of 3 were, with
-- PostgreSQL's CPU per reply 2.7–2.9 ms instead of 1.1; docs/benchmarks.md, "session 7").
-- Unthrottled, because falling behind costs more than the vacuum. See docs/operations.md.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
