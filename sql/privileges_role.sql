-- The connecting role, and what it may do in the database as a whole: create a schema
-- (the journal's, when missing), use the schema TimescaleDB's functions live in, and
-- read and write past row-level security.
SELECT current_user::text,
       r.rolsuper,
       current_database()::text,
       has_database_privilege(current_database(), 'CREATE'),
       (SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'timescaledb')                                  AS timescaledb_schema,
       coalesce((SELECT has_schema_privilege(e.extnamespace, 'USAGE') FROM pg_extension e
                 WHERE e.extname = 'timescaledb'), true)                 AS timescaledb_usage,
       r.rolbypassrls
FROM pg_roles r
WHERE r.rolname = current_user
