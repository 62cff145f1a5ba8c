-- Privileges granted on relation $1 (oid) and its columns, the owner's own excepted.
-- grantee is NULL for PUBLIC; column is NULL for table-level grants.
WITH rel AS (SELECT oid, relowner, relacl FROM pg_class WHERE oid = $1),
acl AS (
    SELECT NULL::text AS column_name, (aclexplode(rel.relacl)).* FROM rel
    UNION ALL
    SELECT a.attname::text, (aclexplode(a.attacl)).*
    FROM pg_attribute a, rel
    WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
)
SELECT CASE WHEN acl.grantee = 0 THEN NULL ELSE pg_get_userbyid(acl.grantee)::text END AS grantee,
       acl.privilege_type::text,
       acl.is_grantable,
       acl.column_name
FROM acl, rel
WHERE acl.grantee <> rel.relowner
ORDER BY 1 NULLS FIRST, 4 NULLS FIRST, 2
