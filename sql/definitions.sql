-- What a table carries besides its columns and indexes, one line per item, sorted:
-- constraints, row-level security and its policies, storage parameters (autovacuum's
-- switch aside: the tool turns it off on the new table during the backfill). Recorded
-- for both tables when the new one is made; a later difference on one side only is a
-- change the other would not get. The relation is named by a literal of its quoted name.
SELECT ARRAY(
    SELECT line FROM (
        SELECT 'constraint ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.conname::pg_catalog.text)
               OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_constraintdef(c.oid) AS line
        FROM pg_catalog.pg_constraint c
        WHERE c.conrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({{relation}})
          AND c.contype OPERATOR(pg_catalog.<>) 'n'
        UNION ALL
        SELECT pg_catalog.format('policy %I for %s, %s, to %s%s%s', p.polname,
                   CASE p.polcmd WHEN 'r' THEN 'select' WHEN 'a' THEN 'insert' WHEN 'w' THEN 'update'
                                 WHEN 'd' THEN 'delete' ELSE 'all' END,
                   CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                   (SELECT pg_catalog.string_agg(CASE WHEN r OPERATOR(pg_catalog.=) 0 THEN 'public'
                                                      ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r)) END, ',' ORDER BY 1)
                    FROM pg_catalog.unnest(p.polroles) AS r),
                   ' using ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(p.polqual, p.polrelid),
                   ' with check ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))
        FROM pg_catalog.pg_policy p
        WHERE p.polrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({{relation}})
        UNION ALL
        SELECT pg_catalog.format('row level security %s, forced %s',
                   CASE WHEN r.relrowsecurity THEN 'on' ELSE 'off' END,
                   CASE WHEN r.relforcerowsecurity THEN 'on' ELSE 'off' END)
        FROM pg_catalog.pg_class r
        WHERE r.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({{relation}})
        UNION ALL
        SELECT 'storage parameter ' OPERATOR(pg_catalog.||) o
        FROM pg_catalog.pg_class r, pg_catalog.unnest(r.reloptions) AS o
        WHERE r.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({{relation}})
          AND o NOT LIKE 'autovacuum\_enabled=%'
    ) AS lines
    ORDER BY line COLLATE "C"
)
