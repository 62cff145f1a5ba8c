SELECT count(*), coalesce(sum(h), 0)::text, coalesce(bit_xor(h), 0)
FROM (
    SELECT hashtextextended({{row_text}}, 0) AS h
    FROM {{table}} AS hyperswap_row
    WHERE {{range}}
    OFFSET 0 -- keeps the subquery whole, so each row is hashed once, not once per aggregate
) AS r
