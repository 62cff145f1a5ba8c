-- Foreign keys of other tables that reference relation $1 (oid).
SELECT con.conname::text, con.conrelid::regclass::text AS referencing_table
FROM pg_constraint con
WHERE con.confrelid = $1 AND con.contype = 'f' AND con.conrelid <> $1
ORDER BY 2, 1
