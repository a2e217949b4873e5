-- libaipalq schema, version 3. Applied by aipalq_migrate() after version 2.
--
-- A delivery's start and its outcome, when the worker records both in one
-- batch (a task shorter than the recorder's hold on start records, see
-- lib/recorder.c), are one row update and now also one event row: the
-- outcome's event carries when the delivery started (aipalq_events.started_at)
-- and its from_status is the status the row had before (pending, scheduled,
-- retrying), not 'running'. A start recorded on its own still has its
-- 'running' event. Before, such a task cost two event rows.
--
-- The worker sends each start's time ("st": Unix ms), so that started_at is
-- when the delivery started, not when the recorder wrote it. Records without
-- it (workers of an older library) get now(), as before.
--
-- Adding a nullable column without a default is a catalogue change only: no
-- table rewrite, whatever the size of aipalq_events.
--
-- Every row the function touches is found by its id, so its plan must look
-- each one up in the primary key (a nested loop over the batch), whatever the
-- statistics say. With statistics older than the backlog (a table analysed
-- while most tasks were completed, then a burst of pending ones; or a table
-- just truncated) the generic plan, kept for the life of the connection,
-- hash-joined the batch against a bitmap scan of every unfinished row: 124 ms
-- for a batch of 17 records with 20,000 waiting, measured in the drain
-- benchmark. Sequential and bitmap scans are off for this function, which
-- leaves the per-id index scans (~10 us per record).
ALTER TABLE aipalq_events ADD COLUMN IF NOT EXISTS started_at timestamptz;

CREATE OR REPLACE FUNCTION aipalq_record(batch jsonb, worker text)
RETURNS TABLE (idx bigint, applied boolean, old_status text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
BEGIN
RETURN QUERY
WITH x AS (
    SELECT x.*, coalesce(to_timestamp(x.st / 1000), now()) AS started_at
    FROM ROWS FROM (jsonb_to_recordset(batch)
        AS (id uuid, k text, tok bigint, att integer, started boolean, result text,
            err text, detail text, run_at double precision, pct integer, msg text,
            st double precision))
        WITH ORDINALITY AS x(id, k, tok, att, started, result, err, detail, run_at, pct, msg,
                             st, n)
), old AS (
    SELECT x.id, t.status, t.token FROM x JOIN aipalq_tasks t ON t.id = x.id
), run AS (
    UPDATE aipalq_tasks t SET status = 'running', attempts = x.att, token = x.tok,
        epoch = (x.tok / 1000000)::integer, started_at = x.started_at, updated_at = now(),
        worker_id = worker, run_at = NULL, progress = coalesce(x.pct, 0),
        progress_message = x.msg
    FROM x WHERE x.k = 'running' AND t.id = x.id AND t.token < x.tok
      AND t.status IN ('pending', 'scheduled', 'retrying', 'running')
    RETURNING t.id
), fin AS (
    UPDATE aipalq_tasks t SET status = x.k, updated_at = now(),
        attempts = x.att, token = x.tok, epoch = (x.tok / 1000000)::integer,
        worker_id = worker,
        started_at = CASE WHEN x.started THEN x.started_at ELSE t.started_at END,
        result = CASE WHEN x.k = 'completed' THEN x.result::jsonb ELSE t.result END,
        progress = CASE WHEN x.k = 'completed' THEN 100 ELSE t.progress END,
        error_message = CASE WHEN x.k = 'completed' THEN NULL ELSE x.err END,
        error_detail = CASE WHEN x.k = 'completed' THEN NULL ELSE x.detail END,
        completed_at = CASE WHEN x.k = 'retrying' THEN NULL ELSE now() END,
        run_at = CASE WHEN x.k = 'retrying' THEN to_timestamp(x.run_at / 1000) ELSE NULL END
    FROM x WHERE x.k IN ('completed', 'failed', 'retrying', 'cancelled') AND t.id = x.id
      AND ((t.token = x.tok AND t.status = 'running')
           OR (x.started AND t.token < x.tok
               AND t.status IN ('pending', 'scheduled', 'retrying', 'running')))
    RETURNING t.id
), back AS (
    UPDATE aipalq_tasks t SET status = 'pending', updated_at = now(), worker_id = NULL,
        attempts = CASE WHEN x.k = 'released' THEN greatest(x.att - 1, 0) ELSE t.attempts END,
        error_message = CASE WHEN x.k = 'requeued' THEN x.err ELSE t.error_message END
    FROM x WHERE x.k IN ('requeued', 'released')
      AND t.id = x.id AND t.token <= x.tok AND t.status = 'running'
    RETURNING t.id
), prog AS (
    UPDATE aipalq_tasks t SET progress = x.pct, progress_message = x.msg, updated_at = now()
    FROM x WHERE x.k = 'progress' AND t.id = x.id AND t.token = x.tok AND t.status = 'running'
    RETURNING t.id
), done AS (
    SELECT id FROM run UNION ALL SELECT id FROM fin UNION ALL SELECT id FROM back
    UNION ALL SELECT id FROM prog
), ev AS (
    INSERT INTO aipalq_events (task_id, from_status, to_status, attempt, worker_id, message,
                               started_at)
    SELECT x.id, old.status,
           CASE x.k WHEN 'requeued' THEN 'pending' WHEN 'released' THEN 'pending' ELSE x.k END,
           x.att, worker, x.err,
           CASE WHEN x.k = 'running' OR x.started THEN x.started_at END
    FROM x JOIN done ON done.id = x.id LEFT JOIN old ON old.id = x.id
    WHERE x.k <> 'progress'
)
SELECT x.n - 1, done.id IS NOT NULL, old.status
FROM x LEFT JOIN done ON done.id = x.id LEFT JOIN old ON old.id = x.id
ORDER BY x.n;
END
$$;
