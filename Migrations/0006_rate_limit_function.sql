-- RateLimiter.acquire in one round trip: GCRA over several keys, all or nothing (the same rule
-- as RateLimit.decide in Sources/RateLimit/GCRA.swift, which the tests hold both to).
-- Returns NULL when allowed (and consumes), else the earliest time to retry (and consumes nothing).
CREATE FUNCTION rate_limit_acquire(p_keys text[], p_intervals float8[], p_bursts int[]) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    now_ts   timestamptz := clock_timestamp();
    current  timestamptz;
    start_ts timestamptz;
    earliest timestamptz;
    retry    timestamptz;
    new_tats timestamptz[] := '{}';
BEGIN
    INSERT INTO rate_limits (key, tat) SELECT unnest(p_keys), now_ts ON CONFLICT (key) DO NOTHING;
    -- Lock in key order, so two callers wanting the same keys never deadlock.
    PERFORM 1 FROM rate_limits WHERE key = ANY (p_keys) ORDER BY key FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
        SELECT tat INTO current FROM rate_limits WHERE key = p_keys[i];
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
    UPDATE rate_limits r SET tat = u.tat FROM unnest(p_keys, new_tats) AS u (key, tat) WHERE r.key = u.key;
    RETURN NULL;
END $$;
