-- Constraints on relation $1 (oid), NOT NULL excepted (a column property in PostgreSQL 15).
SELECT con.conname::text,
       con.contype::text,
       pg_get_constraintdef(con.oid)                                           AS definition,
       ARRAY(SELECT a.attname::text
             FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.pos)                                                   AS columns,
       (SELECT ic.relname::text FROM pg_class ic WHERE ic.oid = con.conindid)  AS index_name,
       con.condeferrable,
       con.condeferred,
       obj_description(con.oid, 'pg_constraint')                               AS comment,
       con.contype = 'f' AND con.confrelid = con.conrelid                      AS self_reference,
       CASE WHEN con.contype = 'f' THEN
           (SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = con.confrelid) END                                 AS references_table
FROM pg_constraint con
WHERE con.conrelid = $1
  AND con.contype <> 'n' -- NOT NULL is a column property here (PostgreSQL 18 records it as a constraint)
ORDER BY con.contype, con.conname
