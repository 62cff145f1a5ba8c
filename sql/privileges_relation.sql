-- Relation $1 (a quoted, schema-qualified name), if it exists: its kind, its owner,
-- whether the connecting role acts as that owner, whether it may use and create in the
-- relation's schema, and whether the owner may create there (ALTER ... OWNER TO requires
-- that of the new owner); names unquoted, whether the owner is a superuser, and whether
-- the role is a member of the owner at all (a NOINHERIT member does not act as it). Looked up by name without to_regclass, which would fail
-- outright on a schema the role may not use.
SELECT c.relkind::text,
       pg_get_userbyid(c.relowner)::text,
       pg_has_role(c.relowner, 'USAGE'),
       n.nspname::text,
       has_schema_privilege(c.relnamespace, 'USAGE'),
       has_schema_privilege(c.relnamespace, 'CREATE'),
       has_schema_privilege(c.relowner, c.relnamespace, 'CREATE'),
       (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = c.relowner),
       c.relname::text,
       pg_has_role(c.relowner, 'MEMBER')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE ARRAY[n.nspname::text, c.relname::text] = pg_catalog.parse_ident($1)
