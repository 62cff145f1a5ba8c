-- Objects bound to relation $1 (oid) itself rather than to its name, which a rename
-- would leave pointing at the old table: SQL functions with BEGIN ATOMIC bodies, rules
-- of other tables, and the like. Views and foreign keys are reported here too; callers
-- skip the ones they handle.
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object,
       CASE WHEN d.classid = 'pg_rewrite'::regclass
                 AND EXISTS (SELECT 1 FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class
                             WHERE r.oid = d.objid AND v.relkind = 'v' AND r.rulename = '_RETURN') THEN 'view'
            WHEN d.classid = 'pg_constraint'::regclass THEN 'constraint'
            ELSE 'other' END AS kind
FROM pg_depend d
WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype = 'n'
  AND NOT (d.classid = 'pg_rewrite'::regclass
           AND EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.oid = d.objid AND r.ev_class = $1))
  AND NOT (d.classid = 'pg_constraint'::regclass
           AND EXISTS (SELECT 1 FROM pg_constraint c WHERE c.oid = d.objid AND c.conrelid = $1))
  AND NOT (d.classid = 'pg_trigger'::regclass
           AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.oid = d.objid AND t.tgrelid = $1))
  AND NOT (d.classid = 'pg_class'::regclass AND d.objid = $1)
  -- hyperswap's own view pinning the columns (trigger.rs) goes with the plan
  AND NOT (d.classid = 'pg_rewrite'::regclass
           AND EXISTS (SELECT 1 FROM pg_rewrite r JOIN pg_class v ON v.oid = r.ev_class
                       WHERE r.oid = d.objid AND v.relnamespace = pg_catalog.to_regnamespace('hyperswap')))
  -- its own column defaults and generation expressions (a generated column reading
  -- another column of the table depends on it; the new table gets its own)
  AND NOT (d.classid = 'pg_attrdef'::regclass
           AND EXISTS (SELECT 1 FROM pg_attrdef a WHERE a.oid = d.objid AND a.adrelid = $1))
  -- its own policies and extended statistics
  AND NOT (d.classid = 'pg_policy'::regclass
           AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.oid = d.objid AND p.polrelid = $1))
  AND NOT (d.classid = 'pg_statistic_ext'::regclass
           AND EXISTS (SELECT 1 FROM pg_statistic_ext x WHERE x.oid = d.objid AND x.stxrelid = $1))
  -- its own partitions or chunks (inheritance children)
  AND NOT (d.classid = 'pg_class'::regclass
           AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = d.objid AND i.inhparent = $1))
GROUP BY 1, 2
ORDER BY 1
