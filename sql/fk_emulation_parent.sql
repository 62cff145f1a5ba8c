-- Written by hyperswap: the referenced side of a foreign key, kept on the hypertable
-- that now carries the referenced table's name (names in the function's comment).
-- Its key is not unique without the time column: a DELETE, or an UPDATE of the
-- referenced columns, leaves the children's references dangling only when no other row
-- with the old key remains, and only then does what ON {{event}} said.
BEGIN
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
