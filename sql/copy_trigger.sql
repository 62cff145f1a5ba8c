-- Written by hyperswap. Acts only while its table carries the application's name
-- (on a hypertable a row trigger fires on the chunk: then its parent must carry it);
-- otherwise it returns at once, so forward and reverse triggers can both stay
-- installed and cutover and rollback are only renames.
DECLARE
    live oid := pg_catalog.to_regclass({{live}});
BEGIN
    IF TG_RELID IS DISTINCT FROM live AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_inherits WHERE inhrelid = TG_RELID AND inhparent = live
    ) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {{to}} ({{columns}}) OVERRIDING SYSTEM VALUE
        VALUES ({{new_values}});
    ELSIF TG_OP = 'UPDATE' THEN
        IF {{row_moves}} THEN
            -- Key or time changed: the row may move to another chunk, which an UPDATE
            -- of a hypertable cannot do.
            DELETE FROM {{to}} WHERE {{old_row}};
            INSERT INTO {{to}} ({{columns}}) OVERRIDING SYSTEM VALUE
            VALUES ({{new_values}});
        ELSE
            UPDATE {{to}} SET ({{set_columns}}) = ROW({{set_values}}) WHERE {{old_row}};
            IF NOT FOUND THEN
                -- Not copied yet: the backfill will find it already there.
                INSERT INTO {{to}} ({{columns}}) OVERRIDING SYSTEM VALUE
                VALUES ({{new_values}});
            END IF;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM {{to}} WHERE {{old_row}};
    ELSE
        TRUNCATE {{to}};
    END IF;
    RETURN NULL;
END
