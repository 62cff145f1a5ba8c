-- Function $1 (a quoted, schema-qualified name) without arguments, if it exists: its
-- owner, whether the connecting role acts as that owner, whether the owner is a
-- superuser, and whether the role is a member of it at all.
SELECT pg_get_userbyid(p.proowner)::text, pg_has_role(p.proowner, 'USAGE'),
       (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = p.proowner),
       pg_has_role(p.proowner, 'MEMBER')
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE ARRAY[n.nspname::text, p.proname::text] = pg_catalog.parse_ident($1) AND p.pronargs = 0
