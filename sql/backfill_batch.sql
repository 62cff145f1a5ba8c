WITH bound AS (
    -- The batch's last key, read from the snapshot without locks: the cursor moves to
    -- it whatever the locking re-check below returns for rows changed meanwhile.
    SELECT count(*) AS n, max(k) AS hi
    FROM (
        SELECT {{key}} AS k
        FROM {{source}}
        WHERE {{key}} {{after}} $1::text::{{key_type}} AND {{key}} <= $2::text::{{key_type}}
        ORDER BY {{key}}
        LIMIT $3
    ) AS keys
), batch AS (
    SELECT {{columns}}
    FROM {{source}}
    WHERE {{key}} {{after}} $1::text::{{key_type}} AND {{key}} <= (SELECT hi FROM bound)
    FOR SHARE
), copied AS (
    INSERT INTO {{target}} ({{columns}}) OVERRIDING SYSTEM VALUE
    SELECT {{columns}} FROM batch
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT n FROM bound), (SELECT hi FROM bound)::text, (SELECT count(*) FROM copied)
