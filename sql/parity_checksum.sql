-- Every function schema-qualified: a function of the same name that another role put
-- in a schema on the search path (public.hashtextextended(text, integer), a better match
-- for a bare `0`) would otherwise run with the tool's rights.
SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(h), 0)::pg_catalog.text, coalesce(pg_catalog.bit_xor(h), 0)
FROM (
    SELECT {{row_hash}} AS h
    FROM {{table}} AS hyperswap_row
    WHERE {{range}}
    OFFSET 0 -- keeps the subquery whole, so each row is hashed once, not once per aggregate
) AS r
