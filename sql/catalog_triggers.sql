-- The user's own triggers on relation $1 (oid): not internal (foreign keys), not ours.
SELECT t.tgname::text, pg_get_triggerdef(t.oid) AS definition, t.tgenabled::text
FROM pg_trigger t
WHERE t.tgrelid = $1 AND NOT t.tgisinternal AND t.tgname NOT LIKE 'hyperswap\_%'
ORDER BY 1
