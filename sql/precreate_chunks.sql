-- Creates the new table's chunks ahead, empty: one row per chunk is inserted (any row
-- of the source, its time set to the chunk's start) and all are deleted again. Should
-- that fail (a CHECK on the time column, say), chunks are made on demand instead.
DECLARE
    first pg_catalog.float8;
    last pg_catalog.float8;
    lo pg_catalog.int8;
    hi pg_catalog.int8;
BEGIN
    SELECT pg_catalog.date_part('epoch', pg_catalog.min({{time}})) * 1000000,
           pg_catalog.date_part('epoch', pg_catalog.max({{time}})) * 1000000
    INTO first, last
    FROM {{source}};
    -- An empty table, or infinite times (which `plan validate` refuses).
    IF first IS NULL OR first OPERATOR(pg_catalog.=) '-infinity' OR last OPERATOR(pg_catalog.=) 'infinity' THEN
        RETURN;
    END IF;
    lo := pg_catalog.floor(first / {{len}})::pg_catalog.int8 * {{len}};
    hi := last::pg_catalog.int8 + 2 * {{len}};
    IF (hi - lo) / {{len}} > {{max_chunks}} THEN
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
