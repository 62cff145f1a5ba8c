-- The journal's schema ($1) and its tables, with their owners and whether the connecting
-- role acts as that owner (its own or an inherited membership, as PostgreSQL counts it),
-- whether the owner is a superuser, and whether the role is a member of it at all.
-- Names unquoted: schema, then table or NULL.
SELECT n.nspname::text, NULL::text, pg_get_userbyid(n.nspowner)::text,
       pg_has_role(n.nspowner, 'USAGE'), (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = n.nspowner),
       pg_has_role(n.nspowner, 'MEMBER')
FROM pg_namespace n
WHERE n.nspname = $1
UNION ALL
SELECT n.nspname::text, c.relname::text,
       pg_get_userbyid(c.relowner)::text, pg_has_role(c.relowner, 'USAGE'),
       (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = c.relowner),
       pg_has_role(c.relowner, 'MEMBER')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind = 'r'
ORDER BY 2 NULLS FIRST
