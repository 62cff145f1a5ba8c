-- Function $1 (a quoted, schema-qualified name) without arguments, if it exists: its
-- owner, whether the connecting role acts as that owner, whether the owner is a
-- superuser, whether the role is a member of it at all, and whether it may execute it
-- (to create the triggers that call it) and reach its schema.
SELECT pg_get_userbyid(p.proowner)::text, pg_has_role(p.proowner, 'USAGE'),
       (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = p.proowner),
       pg_has_role(p.proowner, 'MEMBER'),
       has_function_privilege(p.oid, 'EXECUTE'),
       has_schema_privilege(p.pronamespace, 'USAGE')
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE ARRAY[n.nspname::text, p.proname::text] = pg_catalog.parse_ident($1) AND p.pronargs = 0
