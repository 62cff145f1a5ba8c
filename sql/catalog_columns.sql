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
       col_description(a.attrelid, a.attnum)                                   AS comment,
       -- How parity's checksum reads the column: '' = its own hash, which tells apart
       -- every stored value of these types (integers, bool, "char", oid, date, time,
       -- timestamp(tz), uuid, bytea, text and varchar under a deterministic collation);
       -- else the type's binary send function, whose bytes do too (numeric's scale,
       -- jsonb's numbers, -0.0, an array's bounds, an interval's units, which hash
       -- functions treat as equal); NULL = no send function: the text form.
       CASE
           WHEN a.atttypid IN (16, 17, 18, 20, 21, 23, 25, 26, 1043, 1082, 1083, 1114, 1184, 2950)
                AND coalesce((SELECT co.collisdeterministic FROM pg_collation co WHERE co.oid = a.attcollation), true)
               THEN ''
           -- (and every element, attribute, base type or subtype has one: an aclitem[]
           -- has array_send, but aclitem no binary form)
           WHEN t.typsend <> 0 AND NOT EXISTS (
               WITH RECURSIVE parts(oid) AS (
                   SELECT t.oid
                   UNION
                   SELECT x.sub
                   FROM parts p
                   JOIN pg_type pt ON pt.oid = p.oid
                   CROSS JOIN LATERAL (
                       SELECT pt.typelem WHERE pt.typelem <> 0 AND pt.typlen = -1
                       UNION ALL SELECT pt.typbasetype WHERE pt.typbasetype <> 0
                       UNION ALL SELECT pa.atttypid FROM pg_attribute pa
                                 WHERE pt.typrelid <> 0 AND pa.attrelid = pt.typrelid AND pa.attnum > 0 AND NOT pa.attisdropped
                       UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = pt.oid OR r.rngmultitypid = pt.oid
                   ) AS x(sub)
               )
               SELECT FROM parts p JOIN pg_type pt ON pt.oid = p.oid WHERE pt.typsend = 0
           ) THEN
               (SELECT quote_ident(pn.nspname) || '.' || quote_ident(p.proname)
                FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace
                WHERE p.oid = t.typsend)
       END                                                                     AS hash_via
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
