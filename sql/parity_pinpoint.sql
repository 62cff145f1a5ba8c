-- Rows of one key range that are not identical on both sides, read in one snapshot.
-- Each side's rows carry their text form, whole and per column.
WITH live AS (
    SELECT {{key}} AS k, ROW({{row}})::text AS r, ARRAY[{{cells}}] AS cells
    FROM {{live}}
    WHERE {{range}}
), mirror AS (
    SELECT {{key}} AS k, ROW({{row}})::text AS r, ARRAY[{{cells}}] AS cells
    FROM {{mirror}}
    WHERE {{range}}
)
SELECT coalesce(live.k, mirror.k)::text, live.cells, mirror.cells
FROM live FULL JOIN mirror ON live.k = mirror.k AND live.r = mirror.r
WHERE live.k IS NULL OR mirror.k IS NULL
ORDER BY coalesce(live.k, mirror.k)
LIMIT {{limit}}
