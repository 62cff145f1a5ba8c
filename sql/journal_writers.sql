-- Who besides the journal's owner (and superusers, who can do anything anyway) could
-- change what the journal says, and so what the tool runs later (rollback's reverse
-- SQL) or trusts (phases, parity results): write privileges on its tables and
-- sequences (on a table or on a column), CREATE on its schema, triggers and rules on
-- its tables. $1 = the schema, $2 = the LIKE patterns of the tables a table's owner may
-- append to and take from (change capture's, see src/capture/). One row per finding: the object, what is held or
-- attached, by whom ('' for a trigger or rule, PUBLIC for grantee 0).
WITH granted (object, what, grantee, owner) AS (
    SELECT c.oid::pg_catalog.regclass::pg_catalog.text, a.privilege_type::pg_catalog.text, a.grantee, c.relowner
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) AS a
    WHERE n.nspname OPERATOR(pg_catalog.=) $1
      AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,S}')
      AND a.privilege_type OPERATOR(pg_catalog.=) ANY ('{INSERT,UPDATE,DELETE,TRUNCATE,TRIGGER}')
      -- A change log's INSERT and DELETE, which the table's owner holds (its copy
      -- trigger appends, the tool replays as the owner): a key appended by hand only
      -- makes the tool read that key from the source again, and one deleted is a
      -- difference parity finds; the log holds nothing the tool runs or trusts.
      AND NOT (a.privilege_type OPERATOR(pg_catalog.=) ANY ('{INSERT,DELETE}')
               AND c.relkind OPERATOR(pg_catalog.=) 'r'
               AND c.relname OPERATOR(pg_catalog.~~) ANY ($2::pg_catalog.text[]))
    UNION ALL
    -- Column-level grants (GRANT UPDATE (reverse_sql) ON hyperswap.plans TO ...).
    SELECT c.oid::pg_catalog.regclass::pg_catalog.text,
           a.privilege_type::pg_catalog.text OPERATOR(pg_catalog.||) ' (' OPERATOR(pg_catalog.||)
               pg_catalog.quote_ident(att.attname::pg_catalog.text) OPERATOR(pg_catalog.||) ')',
           a.grantee, c.relowner
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    JOIN pg_catalog.pg_attribute att ON att.attrelid OPERATOR(pg_catalog.=) c.oid
         AND att.attnum OPERATOR(pg_catalog.>) 0 AND NOT att.attisdropped
    CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) AS a
    WHERE n.nspname OPERATOR(pg_catalog.=) $1
      AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}')
      AND a.privilege_type OPERATOR(pg_catalog.=) ANY ('{INSERT,UPDATE,REFERENCES}')
    UNION ALL
    SELECT 'schema ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(n.nspname::pg_catalog.text),
           a.privilege_type::pg_catalog.text, a.grantee, n.nspowner
    FROM pg_catalog.pg_namespace n
    CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) AS a
    WHERE n.nspname OPERATOR(pg_catalog.=) $1
      AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
)
SELECT g.object, g.what,
       CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
            ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END
FROM granted g
WHERE g.grantee OPERATOR(pg_catalog.<>) g.owner
  AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) g.grantee), false)
UNION ALL
SELECT t.tgrelid::pg_catalog.regclass::pg_catalog.text, 'trigger ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(t.tgname::pg_catalog.text), ''
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}') AND NOT t.tgisinternal
UNION ALL
SELECT r.ev_class::pg_catalog.regclass::pg_catalog.text, 'rule ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.rulename::pg_catalog.text), ''
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.ev_class
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}')
ORDER BY 1, 2, 3
