WITH batch AS (
    SELECT {{columns}}
    FROM {{source}}
    WHERE {{key}} {{after}} $1::text::{{key_type}} AND {{key}} <= $2::text::{{key_type}}
    ORDER BY {{key}}
    LIMIT $3
    FOR SHARE
), copied AS (
    INSERT INTO {{target}} ({{columns}}) OVERRIDING SYSTEM VALUE
    SELECT {{columns}} FROM batch
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*), max({{key}})::text, (SELECT count(*) FROM copied) FROM batch
