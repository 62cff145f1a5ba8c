-- Written by hyperswap. A statement trigger: each INSERT, UPDATE, DELETE or TRUNCATE is
-- mirrored with one set-based statement per step, from the statement's transition tables
-- (hyperswap_old, hyperswap_new). It acts only while its table carries the application's
-- name (TG_TABLE_SCHEMA and TG_TABLE_NAME: no catalog lookup), so forward and reverse
-- triggers can both stay installed and cutover and rollback are only renames.
-- The statement's rows are read by position (hyperswap_c1, ... name the table's columns
-- in order), so a column renamed or added on the table by a role the DDL guard cannot
-- stop does not break the application's writes; parity and cutover then refuse until
-- the columns agree again. Dropping a column or changing its type is refused by the
-- database (a view of the tool's names every column; only an explicit CASCADE gets
-- past it).
BEGIN
    IF TG_TABLE_NAME OPERATOR(pg_catalog.<>) {{live_name}}
       OR TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) {{live_schema}} THEN
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        TRUNCATE {{to}};
        RETURN NULL;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
        IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
            -- This transaction's snapshot may predate a copy that the backfill committed:
            -- the DELETE below would not see it and leave it stale. Probing with
            -- ON CONFLICT raises a serialization failure (which the application retries)
            -- when such an invisible copy exists; rows not copied yet are inserted here
            -- and deleted right below.
            INSERT INTO {{to}} ({{columns}}) OVERRIDING SYSTEM VALUE
            SELECT {{selected}} FROM hyperswap_old AS hyperswap_o ({{positions}})
            ON CONFLICT DO NOTHING;
        END IF;
        -- Old rows go (by key and time: the hypertable's unique key); an UPDATE's new
        -- versions come back below, whichever chunk they belong to now.
        DELETE FROM {{to}} AS hyperswap_t USING hyperswap_old AS hyperswap_o ({{positions}})
        WHERE {{old_row}};
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
        INSERT INTO {{to}} ({{columns}}) OVERRIDING SYSTEM VALUE
        SELECT {{selected}} FROM hyperswap_new AS hyperswap_n ({{positions}});
    END IF;
    RETURN NULL;
END
