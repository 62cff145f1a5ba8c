-- A superuser's run also installs this guard: an ALTER TABLE that changes the columns
-- of a table carrying hyperswap's copy triggers (a source before cutover, the new table
-- after it) would break the triggers, and with them every write of the application. It
-- is refused with a message instead. hyperswap's own sessions set hyperswap.ddl = 'on'.
DO $guard$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        RETURN;
    END IF;
    CREATE OR REPLACE FUNCTION hyperswap.ddl_guard_columns(rel pg_catalog.oid) RETURNS pg_catalog.text
        LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
    AS $body$
        SELECT pg_catalog.string_agg(pg_catalog.quote_ident(attname::pg_catalog.text) OPERATOR(pg_catalog.||) ' '
                   OPERATOR(pg_catalog.||) pg_catalog.format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
        FROM pg_catalog.pg_attribute
        WHERE attrelid OPERATOR(pg_catalog.=) rel AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped
    $body$;
    CREATE OR REPLACE FUNCTION hyperswap.ddl_guard() RETURNS event_trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $body$
    DECLARE
        altered record;
        other pg_catalog.regclass;
    BEGIN
        IF pg_catalog.current_setting('hyperswap.ddl', true) IS NOT DISTINCT FROM 'on' THEN
            RETURN;
        END IF;
        FOR altered IN
            SELECT c.objid, c.object_identity FROM pg_catalog.pg_event_trigger_ddl_commands() AS c
            WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND EXISTS (SELECT FROM pg_catalog.pg_trigger t
                          WHERE t.tgrelid OPERATOR(pg_catalog.=) c.objid
                            AND t.tgname OPERATOR(pg_catalog.~) '^hyperswap_(copy|reverse)_')
        LOOP
            -- The table the triggers copy into: the new table before cutover, the
            -- retired one after it.
            SELECT CASE WHEN p.phase OPERATOR(pg_catalog.=) 'cut_over'
                        THEN pg_catalog.to_regclass(t.retired) ELSE pg_catalog.to_regclass(t.target) END
            INTO other
            FROM hyperswap.tables t JOIN hyperswap.plans p ON p.name OPERATOR(pg_catalog.=) t.plan_name
            WHERE pg_catalog.to_regclass(t.source) OPERATOR(pg_catalog.=) altered.objid
            LIMIT 1;
            -- Only a change of the columns breaks the copy (an owner, a storage setting
            -- or a statistics target does not).
            IF other IS NOT NULL AND hyperswap.ddl_guard_columns(altered.objid) IS DISTINCT FROM hyperswap.ddl_guard_columns(other) THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'object_in_use',
                    MESSAGE = pg_catalog.format('%s is being moved by hyperswap: changing its columns now would break the copy triggers and with them the application''s writes', altered.object_identity),
                    HINT = 'finish the move (cutover, then finalize) or undo it (hyperswap abort, or rollback then abort), then alter the table';
            END IF;
        END LOOP;
    END
    $body$;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname OPERATOR(pg_catalog.=) 'hyperswap_ddl_guard') THEN
        CREATE EVENT TRIGGER hyperswap_ddl_guard ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE')
            EXECUTE FUNCTION hyperswap.ddl_guard();
    END IF;
END
$guard$;
