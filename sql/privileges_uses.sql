-- What creating a copy of relation $1 (oid) uses: the types of its columns (USAGE, and
-- USAGE on their schema), the tables its foreign keys reference (REFERENCES), and the
-- functions of its enabled triggers, re-created at cutover (EXECUTE, and schema USAGE),
-- and the other schemas its defaults, constraints, indexes and columns name objects in
-- (sequences, functions, types, collations, operators: the copy's DDL names them, which
-- takes USAGE on their schema; a default's sequence needs no privilege of its own until
-- it is called, and hyperswap never calls it). Names unquoted; a function's arguments
-- as SQL.
SELECT DISTINCT 'type' AS kind,
       n.nspname::text AS schema,
       t.typname::text AS name,
       '' AS arguments,
       has_type_privilege(t.oid, 'USAGE') AS held,
       has_schema_privilege(n.oid, 'USAGE') AS schema_usage
FROM pg_attribute a
JOIN pg_type at ON at.oid = a.atttypid
JOIN pg_type t ON t.oid = CASE WHEN at.typcategory = 'A' AND at.typelem <> 0 THEN at.typelem ELSE at.oid END
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION
SELECT 'references',
       n.nspname::text,
       c.relname::text,
       '',
       has_table_privilege(c.oid, 'REFERENCES'),
       has_schema_privilege(n.oid, 'USAGE')
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.confrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.conrelid = $1 AND con.contype = 'f' AND con.confrelid <> $1
UNION
SELECT 'execute',
       n.nspname::text,
       p.proname::text,
       '(' || pg_get_function_identity_arguments(p.oid) || ')',
       has_function_privilege(p.oid, 'EXECUTE'),
       has_schema_privilege(n.oid, 'USAGE')
FROM pg_trigger tg
JOIN pg_proc p ON p.oid = tg.tgfoid
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE tg.tgrelid = $1 AND NOT tg.tgisinternal AND tg.tgenabled = 'O'
  AND tg.tgname NOT LIKE 'hyperswap\_%'
UNION
SELECT 'schema', n.nspname::text, '', '',
       has_schema_privilege(n.oid, 'USAGE'),
       true
FROM pg_depend d
JOIN pg_namespace n ON n.oid = CASE d.refclassid
    WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = d.refobjid)
    WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = d.refobjid)
    WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = d.refobjid)
    WHEN 'pg_collation'::regclass THEN (SELECT collnamespace FROM pg_collation WHERE oid = d.refobjid)
    WHEN 'pg_operator'::regclass THEN (SELECT oprnamespace FROM pg_operator WHERE oid = d.refobjid)
    WHEN 'pg_opclass'::regclass THEN (SELECT opcnamespace FROM pg_opclass WHERE oid = d.refobjid)
    END
WHERE ((d.classid = 'pg_class'::regclass
        AND (d.objid = $1 OR d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $1)))
       OR (d.classid = 'pg_attrdef'::regclass
           AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = $1))
       OR (d.classid = 'pg_constraint'::regclass
           AND d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = $1 AND contype <> 'f')))
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.oid <> (SELECT relnamespace FROM pg_class WHERE oid = $1)
ORDER BY 1, 2, 3
