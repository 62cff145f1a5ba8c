-- The source relation itself. $1 = schema, $2 = name.
SELECT c.oid,
       c.relkind::text,
       c.relpersistence::text,
       c.relispartition OR c.relkind = 'p'                                    AS partitioned,
       EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid OR i.inhparent = c.oid) AS inherits,
       c.reloftype <> 0                                                       AS typed,
       pg_get_userbyid(c.relowner)                                            AS owner,
       obj_description(c.oid, 'pg_class')                                     AS comment,
       c.relrowsecurity,
       c.relforcerowsecurity,
       greatest(c.reltuples, 0)::float8                                       AS reltuples,
       coalesce(c.reloptions, '{}')::text[]                                   AS reloptions,
       coalesce((SELECT t.reloptions FROM pg_class t WHERE t.oid = c.reltoastrelid), '{}')::text[] AS toast_reloptions
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2
