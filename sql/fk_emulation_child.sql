-- Written by hyperswap: the referencing side of a foreign key (named below), dropped
-- at cutover because the referenced table became a hypertable whose key is not unique
-- without its time column. An INSERT, or an UPDATE of the referencing columns, needs a
-- referenced row; FOR KEY SHARE holds that row until this transaction ends, so a
-- concurrent DELETE of it waits for us (and then sees this row), as a real key's check.
BEGIN
    IF TG_OP = 'UPDATE' AND ROW({{new_columns}}) IS NOT DISTINCT FROM ROW({{old_columns}}) THEN
        RETURN NULL;
    END IF;
{{null_rule}}
    PERFORM FROM {{parent}} AS p WHERE {{parent_matches_new}} LIMIT 1 FOR KEY SHARE OF p;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'foreign_key_violation',
            MESSAGE = pg_catalog.format('insert or update on table %s violates foreign key constraint %s (emulated by hyperswap)', {{child_text}}, {{constraint_text}}),
            DETAIL = pg_catalog.format('Key (%s)=(%s) is not present in table %s.', {{columns_text}}, pg_catalog.concat_ws(', ', {{new_columns}}), {{parent_text}}),
            CONSTRAINT = {{constraint_text}},
            SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
