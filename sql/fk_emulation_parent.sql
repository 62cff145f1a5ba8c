-- Written by hyperswap: the referenced side of a foreign key, kept on the hypertable
-- that now carries the referenced table's name (names in the function's comment).
-- Its key is not unique without the time column: a DELETE, or an UPDATE of the
-- referenced columns, leaves the children's references dangling only when no other row
-- with the old key remains, and only then does what ON {{event}} said.
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- After a TRUNCATE the hypertable is empty: a child still referencing a key
        -- would be an orphan (truncating both in one statement is fine, as with a real
        -- key, since AFTER TRUNCATE triggers fire once every table is truncated).
        PERFORM FROM {{child}} AS c WHERE NOT ({{child_has_null}}) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = 'feature_not_supported',
                MESSAGE = 'cannot truncate a table referenced in a foreign key constraint (emulated by hyperswap)',
                DETAIL = pg_catalog.format('Table %s references %s through %s.', {{child_text}}, {{parent_text}}, {{constraint_text}}),
                HINT = pg_catalog.format('Truncate table %s at the same time.', {{child_text}});
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND ROW({{new_referenced}}) IS NOT DISTINCT FROM ROW({{old_referenced}}) THEN
        RETURN NULL;
    END IF;
    IF {{old_has_null}} THEN
        -- No child can reference a key with a NULL in it.
        RETURN NULL;
    END IF;
    -- FOR KEY SHARE: a concurrent DELETE of that other row waits for this transaction
    -- (or makes this one wait and see it gone), so both cannot miss each other.
    PERFORM FROM {{parent}} AS p WHERE {{parent_matches_old}} LIMIT 1 FOR KEY SHARE OF p;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
{{on_delete}}
    ELSE
{{on_update}}
    END IF;
    RETURN NULL;
END
