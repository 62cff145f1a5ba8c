-- Creates the new table's chunks ahead, empty: one row per chunk is inserted (any row
-- of the source, its time set to the chunk's start) and all are deleted again. Should
-- that fail (a CHECK on the time column, say), chunks are made on demand instead.
DECLARE
    lo pg_catalog.int8;
    hi pg_catalog.int8;
BEGIN
    SELECT pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.min({{time}})) * 1000000 / {{len}})::pg_catalog.int8 * {{len}},
           (pg_catalog.date_part('epoch', pg_catalog.max({{time}})) * 1000000)::pg_catalog.int8 + 2 * {{len}}
    INTO lo, hi
    FROM {{source}};
    IF lo IS NULL OR (hi - lo) / {{len}} > {{max_chunks}} THEN
        RETURN;
    END IF;
    BEGIN
        INSERT INTO {{target}} ({{columns}}) OVERRIDING SYSTEM VALUE
        SELECT {{values}}
        FROM (SELECT * FROM {{source}} LIMIT 1) AS hyperswap_one,
             pg_catalog.generate_series(lo, hi, {{len}}) AS hyperswap_at
        ON CONFLICT DO NOTHING;
        DELETE FROM {{target}};
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'hyperswap: chunks not created ahead (%); they will be made on demand', SQLERRM;
    END;
END
