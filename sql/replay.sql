-- Replays a table's change log into its copy. Takes {{which}} from
-- the log and writes each logged key's rows to the copy as the source has them in this
-- statement's snapshot: rows of the key the source no longer has (deleted, or moved in
-- time or to another key) go, the source's rows come in or overwrite. The snapshot that
-- reads the log also reads the source, so every change the taken entries stand for is
-- in what is written; an entry committed later is not taken and comes in a later pass.
-- Returns the entries taken, the rows deleted and the rows written.
WITH taken AS (
    DELETE FROM {{log}}
    WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY(
        SELECT ctid FROM {{log}}{{filter}}{{limit}}
    ))
    RETURNING {{key}}
), gone AS (
    DELETE FROM {{target}} AS hyperswap_t
    WHERE {{target_key_taken}}
      AND NOT EXISTS (
        SELECT FROM {{source}} AS hyperswap_s
        WHERE {{same_row}}
    )
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
       (SELECT pg_catalog.count(*) FROM put)
