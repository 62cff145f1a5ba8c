-- What creating a copy of relation $1 (oid) uses: the types of its columns (USAGE, and
-- USAGE on their schema), the tables its foreign keys reference (REFERENCES), and the
-- functions of its enabled triggers, re-created at cutover (EXECUTE, and schema USAGE).
-- Names unquoted; a function's argument list as SQL.
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
ORDER BY 1, 2, 3
