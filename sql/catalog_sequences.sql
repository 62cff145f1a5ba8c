-- Sequences owned by columns of relation $1 (oid): 'a' = serial / OWNED BY, 'i' = identity.
SELECT sn.nspname::text AS schema, s.relname::text AS name, a.attname::text AS column_name,
       d.deptype::text
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass
  AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = $1
  AND d.deptype IN ('a', 'i')
ORDER BY a.attnum
