-- rate_limit_acquire (0006) without planning on every call. Its `key = ANY (p_keys)` lock and its
-- `UPDATE … FROM unnest(…)` were re-planned on every call (PostgreSQL rated a plan for arrays of
-- unknown length worse than one for the given array): ~0.06 + 0.09 ms per Telegram send, on the
-- bot's hottest path. Here every statement names one key, a primary-key lookup whose one cached
-- plan serves every call. Same rule, same result (GCRA over all keys, all or nothing).
CREATE OR REPLACE FUNCTION rate_limit_acquire(p_keys text[], p_intervals float8[], p_bursts int[]) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    now_ts   timestamptz := clock_timestamp();
    n        int := coalesce(array_length(p_keys, 1), 0);
    sorted   boolean := true;
    current  timestamptz;
    start_ts timestamptz;
    earliest timestamptz;
    retry    timestamptz;
    new_tats timestamptz[] := '{}';
BEGIN
    INSERT INTO rate_limits (key, tat) SELECT unnest(p_keys), now_ts ON CONFLICT (key) DO NOTHING;
    -- Lock in key order, so two callers wanting the same keys never deadlock. RateLimiter passes
    -- the keys sorted, so each is locked as it is read; any other order is locked all at once first.
    FOR i IN 2 .. n LOOP
        IF NOT p_keys[i - 1] < p_keys[i] THEN sorted := false; END IF;
    END LOOP;
    IF NOT sorted THEN
        PERFORM 1 FROM rate_limits WHERE key = ANY (p_keys) ORDER BY key FOR UPDATE;
    END IF;
    FOR i IN 1 .. n LOOP
        SELECT tat INTO current FROM rate_limits WHERE key = p_keys[i] FOR UPDATE;
        start_ts := greatest(current, now_ts);
        earliest := start_ts - make_interval(secs => p_intervals[i] * (p_bursts[i] - 1));
        IF earliest > now_ts THEN
            retry := greatest(retry, earliest);
        END IF;
        new_tats := new_tats || (start_ts + make_interval(secs => p_intervals[i]));
    END LOOP;
    IF retry IS NOT NULL THEN
        RETURN retry;
    END IF;
    FOR i IN 1 .. n LOOP
        UPDATE rate_limits SET tat = new_tats[i] WHERE key = p_keys[i];
    END LOOP;
    RETURN NULL;
END $$;
