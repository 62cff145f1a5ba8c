-- Rows of one key range that are not identical on both sides, read in one snapshot.
-- Each side's rows carry their key, their text form, whole and per column.
WITH live AS (
    SELECT {{key_columns}}, ROW({{row}})::pg_catalog.text AS r, ARRAY[{{cells}}] AS cells
    FROM {{live}}
    WHERE {{range}}
), mirror AS (
    SELECT {{key_columns}}, ROW({{row}})::pg_catalog.text AS r, ARRAY[{{cells}}] AS cells
    FROM {{mirror}}
    WHERE {{range}}
)
SELECT ARRAY[{{key_text}}], live.cells, mirror.cells
FROM live FULL JOIN mirror ON {{key_equal}} AND live.r = mirror.r
WHERE live.r IS NULL OR mirror.r IS NULL
ORDER BY {{key_order}}
LIMIT {{limit}}
