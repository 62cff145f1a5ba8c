-- Indexes on relation $1 (oid). `prefix` is what pg_get_indexdef puts before the access
-- method, so the rest of the definition can be re-attached to another table.
SELECT ic.relname::text                                                        AS name,
       pg_get_indexdef(i.indexrelid)                                           AS definition,
       format('CREATE %sINDEX %I ON %I.%I USING ',
              CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END,
              ic.relname, n.nspname, c.relname)                                AS prefix,
       i.indisunique,
       EXISTS (SELECT 1 FROM pg_constraint con
               WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid) AS backs_constraint,
       i.indisvalid,
       ARRAY(SELECT coalesce(a.attname::text, '')
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.pos <= i.indnkeyatts
             ORDER BY k.pos)                                                   AS key_columns,
       i.indpred IS NOT NULL                                                   AS partial,
       obj_description(i.indexrelid, 'pg_class')                               AS comment,
       -- Per key column: ` COLLATE "schema"."name"` where the index orders by another
       -- collation than the column's, else ''.
       ARRAY(SELECT CASE WHEN ixc.oid IS NOT NULL AND i.indcollation[k.pos - 1] <> a.attcollation
                         THEN ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(ixc.collname)
                         ELSE '' END
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, pos)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             LEFT JOIN pg_collation ixc ON ixc.oid = i.indcollation[k.pos - 1]
             LEFT JOIN pg_namespace cn ON cn.oid = ixc.collnamespace
             WHERE k.pos <= i.indnkeyatts
             ORDER BY k.pos)                                                   AS key_collates,
       -- Per key column: the schema (quoted) of its operator class's btree operators, when
       -- all five are there and named <, <=, =, >=, > (pg_catalog for built-in types,
       -- the extension's schema for citext or ltree), else ''. The tool's SQL compares
       -- keys with OPERATOR(schema.op), so no operator on a search_path can stand in.
       ARRAY(SELECT coalesce((SELECT pg_catalog.quote_ident(opn.nspname)
                              FROM pg_amop ao
                              JOIN pg_operator o ON o.oid = ao.amopopr
                              JOIN pg_namespace opn ON opn.oid = o.oprnamespace
                              WHERE ao.amopfamily = oc.opcfamily AND ao.amopstrategy BETWEEN 1 AND 5
                                AND ao.amoplefttype = oc.opcintype AND ao.amoprighttype = oc.opcintype
                              GROUP BY opn.nspname
                              HAVING count(*) = 5
                                 AND bool_and(o.oprname = (ARRAY['<', '<=', '=', '>=', '>'])[ao.amopstrategy])),
                             '')
             FROM unnest(i.indclass::oid[]) WITH ORDINALITY AS k(opclass, pos)
             LEFT JOIN pg_opclass oc ON oc.oid = k.opclass
             WHERE k.pos <= i.indnkeyatts
             ORDER BY k.pos)                                                   AS key_op_schemas
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = $1
ORDER BY ic.relname
