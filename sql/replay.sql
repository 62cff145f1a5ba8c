-- Replays a table's change log into its copy.
-- Takes {{which}} from the log.
-- Writes each logged key's rows to the copy as the source has them in this statement's
-- snapshot: the source's rows of the keys come in or overwrite; a copy of an old row (an
-- entry with its time) that the source no longer has (deleted, or moved in time or to
-- another key) goes, found by key and time. Every time a key had since its row was
-- copied is in some entry: the change that moved it away logged it. The snapshot that
-- reads the log also reads the source, so every change the taken entries stand for is
-- in what is written; an entry committed later is not taken and comes in a later pass.
-- {{replace}}Returns the entries taken, the rows deleted, the rows written, and the last entry
-- taken (its ctid: a draining pass goes on after it, never scanning again what the
-- passes before it emptied).
WITH taken AS (
    DELETE FROM {{log}}
    WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(
        SELECT ctid FROM {{log}}{{filter}}{{limit}}
    ))
    RETURNING ctid AS hyperswap_at, {{key}}, {{old_time}}
), keys AS (
    SELECT {{key}} FROM taken
), stale AS (
    -- Old rows the source no longer has, by its unique index: usually none.
    SELECT {{key}}, {{old_time}} FROM taken AS hyperswap_o
    WHERE {{old_time}} IS NOT NULL
      AND NOT EXISTS (
        SELECT FROM {{source}} AS hyperswap_s
        WHERE {{same_old}}
    )
), gone AS (
    DELETE FROM {{target}} AS hyperswap_t{{gone}}
    RETURNING 1
), put AS (
    INSERT INTO {{target}} AS hyperswap_t ({{columns}}) OVERRIDING SYSTEM VALUE
    SELECT {{columns}} FROM {{source}}
    WHERE {{source_key_taken}}
      -- After `gone` (read whole here, first): a row it removes cannot stand in the way
      -- of another unique index.
      AND (SELECT pg_catalog.count(*) FROM gone) OPERATOR(pg_catalog.>=) 0
    ON CONFLICT ({{unique}}) {{on_conflict}}
    RETURNING 1
)
SELECT (SELECT pg_catalog.count(*) FROM taken),
       (SELECT pg_catalog.count(*) FROM gone),
       (SELECT pg_catalog.count(*) FROM put),
       (SELECT pg_catalog.max(hyperswap_at) FROM taken)::pg_catalog.text
