-- The last key of the next batch, read from the index in key order without locks: the
-- key $3 rows after the cursor $1 (inclusive for a range's first batch), at most the
-- range's end $2. No row: the rest of the range fits in one batch.
SELECT {{key_text}}
FROM {{source}}
WHERE {{in_range}}
ORDER BY {{order}}
OFFSET $3 LIMIT 1
