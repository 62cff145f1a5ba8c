CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $hyperswap$
-- Written by hyperswap for plan {{plan}}: mirrors every change to {{from}} into {{to}},
-- in the writer's own transaction.
BEGIN
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
$hyperswap$
