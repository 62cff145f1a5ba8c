-- Views and materialized views that read relation $1 (oid) directly, with their
-- definitions as text (taken before any rename, so they name the table by its name).
SELECT DISTINCT v.oid::bigint, n.nspname::text, v.relname::text, v.relkind::text,
       pg_get_viewdef(v.oid) AS definition,
       coalesce(array_to_string(v.reloptions, ', '), '') AS options
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class v ON v.oid = r.ev_class
JOIN pg_namespace n ON n.oid = v.relnamespace
WHERE d.classid = 'pg_rewrite'::regclass
  AND d.refclassid = 'pg_class'::regclass
  AND d.refobjid = $1
  AND v.oid <> $1
  -- hyperswap's own view pinning the columns (trigger.rs) goes with the plan
  AND v.relnamespace IS DISTINCT FROM pg_catalog.to_regnamespace('hyperswap')
ORDER BY 1
