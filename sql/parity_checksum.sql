SELECT count(*), coalesce(sum(h), 0)::text, coalesce(bit_xor(h), 0)
FROM (
    SELECT hashtextextended(ROW({{row}})::text, 0) AS h
    FROM {{table}}
    WHERE {{range}}
) AS r
