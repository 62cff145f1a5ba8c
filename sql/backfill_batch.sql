-- One batch: the rows of the key interval ($1, $2], or [$1, $2] for a range's first
-- batch, read without locks from this transaction's snapshot. A row the application
-- changes after the snapshot has its key in the change log, which is replayed once the
-- backfill is over: the copy never keeps a stale row, and the batch holds no lock the
-- application waits for.
INSERT INTO {{target}} ({{columns}}) OVERRIDING SYSTEM VALUE
SELECT {{columns}}
FROM {{source}}
WHERE {{in_range}}
