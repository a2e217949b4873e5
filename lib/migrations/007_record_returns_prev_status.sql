-- libaipalq schema, version 7. Applied by aipalq_migrate() after version 6.
--
-- aipalq_tasks.prev_status: the status a task had before its last status
-- change, kept by every writer of status. aipalq_record sets it in its update
-- and so has its update return the status each row had, where it used to look
-- every row of the batch up first (a second probe of the primary key per
-- task, and hash joins to match the two). Only rows the update did not apply
-- to, rare, are still looked up, for the status the caller is told.
-- Measured with batches of 300 completions, the two versions' calls
-- alternating in one session on one table: 0.91-0.94x the time per completion
-- of version 6, in six runs (2.0-3.2 us less per task, of 24-42 us as the
-- host's speed varied).
-- Adding a column without a default rewrites nothing: it is instant on a
-- table of any size.
ALTER TABLE aipalq_tasks ADD COLUMN prev_status text;

CREATE OR REPLACE FUNCTION aipalq_record(batch jsonb, worker text)
RETURNS TABLE (idx bigint, applied boolean, old_status text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
    ids uuid[] := ARRAY(SELECT (e->>'id')::uuid FROM jsonb_array_elements(batch) AS e
                        ORDER BY 1);
    lo  uuid := ids[1];
    hi  uuid := ids[cardinality(ids)];
BEGIN
RETURN QUERY
WITH x AS (
    SELECT x.*, coalesce(to_timestamp(x.st / 1000), now()) AS started_at,
           x.k IN ('completed', 'failed', 'retrying', 'cancelled') AS outcome,
           x.k IN ('requeued', 'released') AS back
    FROM ROWS FROM (jsonb_to_recordset(batch)
        AS (id uuid, k text, tok bigint, att integer, started boolean, result text,
            err text, detail text, run_at double precision, pct integer, msg text,
            st double precision))
        WITH ORDINALITY AS x(id, k, tok, att, started, result, err, detail, run_at, pct, msg,
                             st, n)
), done AS (
    UPDATE aipalq_tasks t SET
        prev_status = CASE WHEN x.k = 'progress' THEN t.prev_status ELSE t.status END,
        status = CASE WHEN x.back THEN 'pending' WHEN x.k = 'progress' THEN t.status
                      ELSE x.k END,
        attempts = CASE WHEN x.k = 'released' THEN greatest(x.att - 1, 0)
                        WHEN x.k = 'running' OR x.outcome THEN x.att ELSE t.attempts END,
        token = CASE WHEN x.k = 'running' OR x.outcome THEN x.tok ELSE t.token END,
        epoch = CASE WHEN x.k = 'running' OR x.outcome THEN (x.tok / 1000000)::integer
                     ELSE t.epoch END,
        started_at = CASE WHEN x.k = 'running' OR (x.outcome AND x.started) THEN x.started_at
                          ELSE t.started_at END,
        updated_at = now(),
        worker_id = CASE WHEN x.back THEN NULL WHEN x.k = 'progress' THEN t.worker_id
                         ELSE worker END,
        run_at = CASE WHEN x.k = 'retrying' THEN to_timestamp(x.run_at / 1000)
                      WHEN x.k = 'running' OR x.outcome THEN NULL ELSE t.run_at END,
        progress = CASE WHEN x.k = 'running' THEN coalesce(x.pct, 0)
                        WHEN x.k = 'progress' THEN x.pct
                        WHEN x.k = 'completed' THEN 100 ELSE t.progress END,
        progress_message = CASE WHEN x.k IN ('running', 'progress') THEN x.msg
                                ELSE t.progress_message END,
        result = CASE WHEN x.k = 'completed' THEN x.result::jsonb ELSE t.result END,
        error_message = CASE WHEN x.k = 'completed' THEN NULL
                             WHEN x.outcome OR x.k = 'requeued' THEN x.err
                             ELSE t.error_message END,
        error_detail = CASE WHEN x.k = 'completed' THEN NULL WHEN x.outcome THEN x.detail
                            ELSE t.error_detail END,
        completed_at = CASE WHEN x.k = 'retrying' THEN NULL WHEN x.outcome THEN now()
                            ELSE t.completed_at END
    FROM x WHERE t.id = x.id AND t.id = ANY(ids) AND t.id BETWEEN lo AND hi AND CASE
        WHEN x.k = 'running' THEN
            t.token < x.tok AND t.status IN ('pending', 'scheduled', 'retrying', 'running')
        WHEN x.outcome THEN
            (t.token = x.tok AND t.status = 'running')
            OR (x.started AND t.token < x.tok
                AND t.status IN ('pending', 'scheduled', 'retrying', 'running'))
        WHEN x.back THEN t.token <= x.tok AND t.status = 'running'
        WHEN x.k = 'progress' THEN t.token = x.tok AND t.status = 'running'
        ELSE false END
    RETURNING t.id, t.prev_status
), ev AS (
    INSERT INTO aipalq_events (task_id, from_status, to_status, attempt, worker_id, message,
                               started_at)
    SELECT x.id, done.prev_status, CASE WHEN x.back THEN 'pending' ELSE x.k END,
           x.att, worker, x.err,
           CASE WHEN x.k = 'running' OR x.started THEN x.started_at END
    FROM x JOIN done ON done.id = x.id
    WHERE x.k <> 'progress'
)
SELECT x.n - 1, done.id IS NOT NULL,
       CASE WHEN done.id IS NULL THEN
                (SELECT t.status FROM aipalq_tasks t
                 WHERE t.id = x.id AND t.id BETWEEN lo AND hi)
            WHEN x.k = 'progress' THEN 'running' -- applies to running tasks only
            ELSE done.prev_status END
FROM x LEFT JOIN done ON done.id = x.id
ORDER BY x.n;
END
$$;
