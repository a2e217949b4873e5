-- libaipalq schema, version 1. Applied by aipalq_migrate() inside one
-- transaction, under an advisory lock.

-- The durable record of every task. Partitioned by id: ids are UUIDv7, so a
-- range of ids is a range of creation times, a lookup by id touches one
-- partition, and old weeks are pruned by dropping a partition (no DELETE, no
-- vacuum debt). fillfactor leaves room on each page for the updates a task
-- receives (running, then its outcome).
CREATE TABLE aipalq_tasks (
    id               uuid        NOT NULL,
    type             text        NOT NULL,
    queue            text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'scheduled', 'running', 'retrying',
                          'completed', 'failed', 'cancelled')),
    priority         smallint    NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10),
    params           jsonb       NOT NULL DEFAULT '{}',
    result           jsonb,
    error_message    text,
    error_detail     text,
    attempts         integer     NOT NULL DEFAULT 0,
    max_retries      integer     NOT NULL DEFAULT 3,
    -- bumped on every dispatch made again from PostgreSQL (retry, reconciler)
    epoch            integer     NOT NULL DEFAULT 0,
    -- the fencing token of the delivery now or last running: epoch * 1e6 +
    -- delivery number; only ever grows
    token            bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    run_at           timestamptz,
    worker_id        text,
    user_id          text,
    idempotency_key  text,
    progress         smallint    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    progress_message text,
    cancel_requested boolean     NOT NULL DEFAULT false,
    -- the Redis key namespace the task is dispatched in (deployments sharing
    -- one database keep to their own tasks)
    namespace        text        NOT NULL DEFAULT 'aipalq',
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);

-- Lists are scoped to a namespace, filter by status, queue, type or user,
-- and page newest (or oldest) first by id, which is creation order. The
-- total of a list is an index-only count over these.
CREATE INDEX aipalq_tasks_status_idx ON aipalq_tasks (namespace, status, id);
CREATE INDEX aipalq_tasks_queue_idx ON aipalq_tasks (namespace, queue, status, id);
CREATE INDEX aipalq_tasks_type_idx ON aipalq_tasks (namespace, type, status, id);
CREATE INDEX aipalq_tasks_user_idx ON aipalq_tasks (namespace, user_id, status, id)
    WHERE user_id IS NOT NULL;
-- The reconciler and the queue counts read only unfinished tasks: a small
-- index however large the table grows.
CREATE INDEX aipalq_tasks_active_idx ON aipalq_tasks (queue, status, id)
    WHERE status IN ('pending', 'scheduled', 'running', 'retrying');

-- Catches ids outside every weekly partition (a producer clock far off).
CREATE TABLE aipalq_tasks_default PARTITION OF aipalq_tasks DEFAULT;

-- The smallest UUIDv7 of an instant: partition bounds.
CREATE FUNCTION aipalq_uuid_floor(ts timestamptz) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0')
            || repeat('0', 20))::uuid
$$;

-- Creates the weekly partitions from this week to weeks_ahead weeks on.
-- Called by aipalq_migrate() and by every reconciler pass.
CREATE FUNCTION aipalq_ensure_partitions(weeks_ahead integer DEFAULT 4) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    week0 timestamptz := date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    lo    timestamptz;
    name  text;
    made  integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('aipalq_partitions'));
    FOR i IN 0..weeks_ahead LOOP
        lo := week0 + make_interval(weeks => i);
        name := 'aipalq_tasks_' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF aipalq_tasks '
                           'FOR VALUES FROM (%L) TO (%L) WITH (fillfactor = 85)',
                           name, aipalq_uuid_floor(lo),
                           aipalq_uuid_floor(lo + interval '1 week'));
            made := made + 1;
        EXCEPTION WHEN check_violation THEN
            -- Rows of that week already sit in the default partition; they
            -- stay there, correct but slower to prune.
            RAISE NOTICE 'aipalq: partition % not created: %', name, SQLERRM;
        END;
    END LOOP;
    RETURN made;
END $$;

-- Drops the weekly partitions that end before `older_than` and hold no
-- unfinished task. Returns how many were dropped.
CREATE FUNCTION aipalq_drop_partitions(older_than timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part    record;
    busy    boolean;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('aipalq_partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'aipalq_tasks'::regclass
          AND c.relname ~ '^aipalq_tasks_[0-9]{8}$'
    LOOP
        CONTINUE WHEN (to_date(substr(part.relname, 14), 'YYYYMMDD')::timestamp
                       AT TIME ZONE 'UTC') + interval '1 week' > older_than;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE status IN '
                       '(''pending'', ''scheduled'', ''running'', ''retrying''))',
                       part.relname) INTO busy;
        CONTINUE WHEN busy;
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;

-- Idempotency keys of unfinished tasks. A key whose task has finished (or
-- been pruned) may be claimed again.
CREATE TABLE aipalq_idempotency (
    key        text        PRIMARY KEY,
    task_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Tasks enqueued inside a caller's transaction, waiting to be dispatched once
-- that transaction has committed (aipalq_relay_outbox).
CREATE TABLE aipalq_outbox (
    task_id    uuid        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The history of every task: one row per transition.
CREATE TABLE aipalq_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     uuid        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    from_status text,
    to_status   text        NOT NULL,
    attempt     integer,
    worker_id   text,
    message     text
);
CREATE INDEX aipalq_events_task_idx ON aipalq_events (task_id, id);
CREATE INDEX aipalq_events_at_idx ON aipalq_events USING brin (at);

-- Claims an idempotency key for new_id, or returns the unfinished task that
-- holds it.
CREATE FUNCTION aipalq_claim_key(k text, new_id uuid) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    holder        uuid;
    holder_status text;
BEGIN
    LOOP
        INSERT INTO aipalq_idempotency (key, task_id) VALUES (k, new_id)
            ON CONFLICT (key) DO NOTHING;
        IF FOUND THEN
            RETURN new_id;
        END IF;
        SELECT i.task_id INTO holder FROM aipalq_idempotency i WHERE i.key = k FOR UPDATE;
        CONTINUE WHEN NOT FOUND; -- released meanwhile: try to insert again
        SELECT t.status INTO holder_status FROM aipalq_tasks t WHERE t.id = holder;
        IF holder_status IS NULL
           OR holder_status IN ('completed', 'failed', 'cancelled') THEN
            UPDATE aipalq_idempotency SET task_id = new_id, created_at = now() WHERE key = k;
            RETURN new_id;
        END IF;
        RETURN holder;
    END LOOP;
END $$;

-- Inserts a batch of tasks given as a JSON array of objects with id, type,
-- queue, priority, params (JSON text), max_retries, and optional run_at (Unix
-- ms), user_id, key (idempotency). Returns, per element in order, the task id
-- and whether it was created (false: an unfinished task held its key).
-- With use_outbox the tasks are also written to the outbox and relays are
-- woken by NOTIFY when the surrounding transaction commits.
CREATE FUNCTION aipalq_enqueue(batch jsonb, use_outbox boolean)
RETURNS TABLE (idx integer, task_id uuid, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    e      jsonb;
    i      integer := 0;
    new_id uuid;
    holder uuid;
BEGIN
    IF NOT jsonb_path_exists(batch, '$[*].key') THEN
        -- The common case: one set-based insert for the whole batch.
        INSERT INTO aipalq_tasks (id, type, queue, status, priority, params, max_retries,
                                  run_at, user_id, namespace)
        SELECT (x->>'id')::uuid, x->>'type', x->>'queue',
               CASE WHEN x->>'run_at' IS NULL THEN 'pending' ELSE 'scheduled' END,
               (x->>'priority')::smallint, (x->>'params')::jsonb,
               (x->>'max_retries')::integer,
               to_timestamp((x->>'run_at')::double precision / 1000), x->>'user_id', x->>'ns'
        FROM jsonb_array_elements(batch) AS x;
        IF use_outbox THEN
            INSERT INTO aipalq_outbox (task_id)
            SELECT (x->>'id')::uuid FROM jsonb_array_elements(batch) AS x;
            PERFORM pg_notify('aipalq_outbox', '');
        END IF;
        RETURN QUERY
            SELECT (n - 1)::integer, (x->>'id')::uuid, true
            FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(x, n);
        RETURN;
    END IF;
    FOR e IN SELECT value FROM jsonb_array_elements(batch) LOOP
        new_id := (e->>'id')::uuid;
        holder := new_id;
        IF e ? 'key' THEN
            -- keys are scoped by namespace (namespace names contain no ':')
            holder := aipalq_claim_key((e->>'ns') || ':' || (e->>'key'), new_id);
        END IF;
        IF holder = new_id THEN
            INSERT INTO aipalq_tasks (id, type, queue, status, priority, params, max_retries,
                                      run_at, user_id, idempotency_key, namespace)
            VALUES (new_id, e->>'type', e->>'queue',
                    CASE WHEN e->>'run_at' IS NULL THEN 'pending' ELSE 'scheduled' END,
                    (e->>'priority')::smallint, (e->>'params')::jsonb,
                    (e->>'max_retries')::integer,
                    to_timestamp((e->>'run_at')::double precision / 1000), e->>'user_id',
                    e->>'key', e->>'ns');
            IF use_outbox THEN
                INSERT INTO aipalq_outbox (task_id) VALUES (new_id);
            END IF;
        END IF;
        idx := i;
        task_id := holder;
        created := holder = new_id;
        RETURN NEXT;
        i := i + 1;
    END LOOP;
    IF use_outbox THEN
        PERFORM pg_notify('aipalq_outbox', '');
    END IF;
END $$;

-- Records a batch of worker transitions in one statement. `batch` is a JSON
-- array of {id, k (kind), tok, att, started, result, err, detail, run_at,
-- pct, msg}; `started` marks an outcome that also carries the start of its
-- delivery (the worker folds the two when both wait in one batch);
-- each id appears at most once (the caller splits batches where an id
-- repeats). Every update is fenced by the delivery's token: a delivery that
-- lost its lease cannot change the row. Returns one row per element: whether
-- it applied and the status the row had before.
--   running    a delivery started (from a waiting state, or replacing an
--              older delivery whose end was never recorded)
--   completed / failed / retrying / cancelled: the delivery's outcome
--   requeued   its lease expired; waiting again (the attempt counted)
--   released   handed back by a stopping worker (the attempt not counted)
--   progress   progress of the running delivery (no event)
CREATE FUNCTION aipalq_record(batch jsonb, worker text)
RETURNS TABLE (idx bigint, applied boolean, old_status text)
LANGUAGE sql AS $$
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
ORDER BY x.n
$$;

SELECT aipalq_ensure_partitions();
