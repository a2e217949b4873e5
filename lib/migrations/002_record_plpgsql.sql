-- libaipalq schema, version 2. Applied by aipalq_migrate() after version 1.
--
-- aipalq_record() becomes PL/pgSQL with a generic plan. As LANGUAGE sql it was
-- planned anew on every call, and planning its five UPDATEs against every
-- partition of aipalq_tasks cost 10-30 ms of PostgreSQL CPU per call: nothing
-- for a drain's batches of hundreds, but most of the cost of a worker
-- recording one or two transitions at a time (measured at 200 tasks/s, ~3 ms
-- of PostgreSQL CPU per task). PL/pgSQL keeps the plan for the connection,
-- and force_generic_plan keeps it from the first call on (the batch's contents
-- never change the plan: jsonb_to_recordset's row estimate is fixed). Same
-- arguments, same results, same semantics as version 1's.
--
-- jit = off on both of the queue's set-based functions: their cost estimates
-- grow with the table (a million rows put aipalq_record over
-- jit_optimize_above_cost) and JIT code is compiled per execution, never kept
-- with a cached plan: seconds of LLVM work for a millisecond statement. The
-- library's connections turn JIT off as well; these settings also hold for
-- callers of the functions on connections of their own.
CREATE OR REPLACE FUNCTION aipalq_record(batch jsonb, worker text)
RETURNS TABLE (idx bigint, applied boolean, old_status text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
BEGIN
RETURN QUERY
WITH x AS (
    SELECT * FROM ROWS FROM (jsonb_to_recordset(batch)
        AS (id uuid, k text, tok bigint, att integer, started boolean, result text,
            err text, detail text, run_at double precision, pct integer, msg text))
        WITH ORDINALITY AS x(id, k, tok, att, started, result, err, detail, run_at, pct, msg, n)
), old AS (
    SELECT x.id, t.status, t.token FROM x JOIN aipalq_tasks t ON t.id = x.id
), run AS (
    UPDATE aipalq_tasks t SET status = 'running', attempts = x.att, token = x.tok,
        epoch = (x.tok / 1000000)::integer, started_at = now(), updated_at = now(),
        worker_id = worker, run_at = NULL, progress = coalesce(x.pct, 0),
        progress_message = x.msg
    FROM x WHERE x.k = 'running' AND t.id = x.id AND t.token < x.tok
      AND t.status IN ('pending', 'scheduled', 'retrying', 'running')
    RETURNING t.id
), fin AS (
    UPDATE aipalq_tasks t SET status = x.k, updated_at = now(),
        attempts = x.att, token = x.tok, epoch = (x.tok / 1000000)::integer,
        worker_id = worker,
        started_at = CASE WHEN x.started THEN now() ELSE t.started_at END,
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
    INSERT INTO aipalq_events (task_id, from_status, to_status, attempt, worker_id, message)
    SELECT x.id, old.status, 'running', x.att, worker, NULL
    FROM x JOIN done ON done.id = x.id LEFT JOIN old ON old.id = x.id
    WHERE x.started
    UNION ALL
    SELECT x.id, CASE WHEN x.started THEN 'running' ELSE old.status END,
           CASE x.k WHEN 'requeued' THEN 'pending' WHEN 'released' THEN 'pending' ELSE x.k END,
           x.att, worker, x.err
    FROM x JOIN done ON done.id = x.id LEFT JOIN old ON old.id = x.id
    WHERE x.k <> 'progress'
)
SELECT x.n - 1, done.id IS NOT NULL, old.status
FROM x LEFT JOIN done ON done.id = x.id LEFT JOIN old ON old.id = x.id
ORDER BY x.n;
END
$$;

ALTER FUNCTION aipalq_enqueue(jsonb, boolean) SET jit = off;
