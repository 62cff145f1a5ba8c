-- Written by hyperswap. A statement trigger: each INSERT, UPDATE or DELETE appends the
-- keys of the rows it wrote (an UPDATE: their keys before and after; an old row with its
-- time, so that the replay finds a copy it must remove without searching every chunk)
-- to the change log,
-- one set-based INSERT per step from the statement's transition tables (hyperswap_old,
-- hyperswap_new). The tool replays the log into the copy: each logged key is read again
-- from the source and written to the copy as it is then, so the application's
-- transaction pays for one narrow heap insert, whatever its isolation level, and never
-- touches the hypertable. A TRUNCATE empties the copy at once.
-- It acts only while its table carries the application's name (TG_TABLE_SCHEMA and
-- TG_TABLE_NAME: no catalog lookup), so forward and reverse triggers can both stay
-- installed and cutover and rollback are only renames.
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
        INSERT INTO {{log}} SELECT {{key}}, {{time}} FROM hyperswap_old AS hyperswap_o ({{positions}});
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
        INSERT INTO {{log}} SELECT {{key}}, NULL FROM hyperswap_new AS hyperswap_n ({{positions}});
    END IF;
    RETURN NULL;
END
