-- Foreign keys of other tables that reference relation $1 (oid), with their definitions
-- and what they do: the referencing and referenced columns (in key order), the ON DELETE
-- and ON UPDATE actions, the MATCH type, and the columns `ON DELETE SET NULL (...)`
-- names. Only keys that can be dropped on their own: not a partition's copy of its
-- partitioned table's key (conparentid), not a TimescaleDB chunk's copy of its
-- hypertable's key (dropping the hypertable's drops those).
SELECT con.conname::text, con.conrelid::regclass::text AS referencing_table,
       pg_catalog.pg_get_constraintdef(con.oid) AS definition,
       pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS referencing_quoted,
       cn.nspname::text AS referencing_schema,
       c.relname::text AS referencing_name,
       ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.n) AS columns,
       ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(con.confkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.n) AS referenced_columns,
       con.confdeltype::text, con.confupdtype::text, con.confmatchtype::text,
       ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(con.confdelsetcols) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.n) AS delete_set_columns,
       con.convalidated, con.condeferrable, con.condeferred,
       -- The key's own equality operators, schema-qualified as OPERATOR(schema.name):
       -- referenced = referencing (conpfeqop), and referenced = referenced (conppeqop).
       ARRAY(SELECT 'OPERATOR(' || pg_catalog.quote_ident(n.nspname) || '.' || o.oprname || ')'
             FROM pg_catalog.unnest(con.conpfeqop) WITH ORDINALITY AS k(op, n)
             JOIN pg_catalog.pg_operator o ON o.oid = k.op
             JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
             ORDER BY k.n) AS referenced_referencing_ops,
       ARRAY(SELECT 'OPERATOR(' || pg_catalog.quote_ident(n.nspname) || '.' || o.oprname || ')'
             FROM pg_catalog.unnest(con.conppeqop) WITH ORDINALITY AS k(op, n)
             JOIN pg_catalog.pg_operator o ON o.oid = k.op
             JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
             ORDER BY k.n) AS referenced_referenced_ops,
       c.relkind = 'p' AS referencing_partitioned
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
WHERE con.confrelid = $1 AND con.contype = 'f' AND con.conrelid <> $1
  AND con.conparentid = 0
  AND NOT EXISTS (SELECT FROM _timescaledb_catalog.chunk ch
                  WHERE ch.schema_name = cn.nspname AND ch.table_name = c.relname)
ORDER BY 2, 1
