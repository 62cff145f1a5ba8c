-- Foreign keys of other tables that reference relation $1 (oid), with their definitions.
SELECT con.conname::text, con.conrelid::regclass::text AS referencing_table,
       pg_get_constraintdef(con.oid) AS definition,
       quote_ident(cn.nspname) || '.' || quote_ident(c.relname) AS referencing_quoted
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace cn ON cn.oid = c.relnamespace
WHERE con.confrelid = $1 AND con.contype = 'f' AND con.conrelid <> $1
ORDER BY 2, 1
