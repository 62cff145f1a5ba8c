-- Columns of relation $1 (oid), in order.
SELECT a.attname::text,
       format_type(a.atttypid, a.atttypmod)                                    AS type_sql,
       t.typname::text                                                         AS type_name,
       a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)                                         AS default_sql,
       a.attidentity::text,
       a.attgenerated::text,
       CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 THEN
           (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
            FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
            WHERE co.oid = a.attcollation)
       END                                                                     AS collation_sql,
       col_description(a.attrelid, a.attnum)                                   AS comment
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
