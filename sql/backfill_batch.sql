-- One batch: the rows of the key interval ($1, $2], or [$1, $2] for a range's first
-- batch, locked FOR SHARE so that a concurrent UPDATE or DELETE of one of them waits for
-- this batch to commit (and is then mirrored by the copy trigger). Rows the trigger
-- copied first are skipped by key, read from the target's index over the same interval.
-- {{conflict_note}}
-- Returns the rows read and the rows inserted.
WITH batch AS (
    SELECT {{columns}}
    FROM {{source}}
    WHERE {{in_range}}
    FOR SHARE
), copied AS (
    INSERT INTO {{target}} ({{columns}}) OVERRIDING SYSTEM VALUE
    SELECT {{columns}} FROM batch AS hyperswap_b
    WHERE NOT EXISTS (
        SELECT FROM {{target}} AS hyperswap_t
        WHERE {{same_key}}
          AND {{in_range_t}}
    ){{on_conflict}}
    RETURNING 1
)
SELECT (SELECT pg_catalog.count(*) FROM batch), (SELECT pg_catalog.count(*) FROM copied)
