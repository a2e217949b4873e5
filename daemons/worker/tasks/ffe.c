/* FFE tasks: plan_ffe_goal and track_ffe_progress. The planning method is in
 * compute/planner.{h,c}, the progress math in compute/progress.{h,c}; this
 * is the glue to ffe_goals and atomic_blocks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "planner.h"
#include "progress.h"
#include "task.h"

static const char *block_size(int minutes)
{
    return minutes <= 30 ? "small" : minutes <= 60 ? "medium" : "large";
}

void handle_plan_ffe_goal(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *goal = NULL, *done = NULL, *now = NULL;
    char *blocks_json = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *goal_id = task_str(&ctx, "goal_id", "");
    const char *user = task_str(&ctx, "user_id", "");
    const char *description = task_str(&ctx, "goal_description", "");
    const char *complexity = task_str(&ctx, "complexity_level", "medium");
    double hours = task_num(&ctx, "available_hours", 0);

    if (task_exec(&ctx, "BEGIN", 0, NULL) != 0)
        goto out;
    const char *gp[] = {goal_id};
    goal = task_sql(&ctx,
                    "SELECT user_id, title, (extract(epoch FROM deadline) * 1000)::bigint,"
                    " available_hours FROM ffe_goals WHERE goal_id = $1 FOR UPDATE",
                    1, gp);
    if (!goal)
        goto out;
    const char *title = NULL;
    int64_t deadline_ms = 0;
    if (PQntuples(goal) == 1) {
        if (strcmp(PQgetvalue(goal, 0, 0), user) != 0) {
            task_fail(&ctx, "user_id", 0, "goal %s belongs to another user", goal_id);
            goto out;
        }
        title = PQgetisnull(goal, 0, 1) ? NULL : PQgetvalue(goal, 0, 1);
        deadline_ms = PQgetisnull(goal, 0, 2) ? 0 : strtoll(PQgetvalue(goal, 0, 2), NULL, 10);
        if (hours <= 0 && !PQgetisnull(goal, 0, 3))
            hours = strtod(PQgetvalue(goal, 0, 3), NULL);
        done = task_sql(&ctx, "SELECT count(*) FROM atomic_blocks WHERE goal_id = $1 AND completed",
                        1, gp);
        if (!done)
            goto out;
        long completed = atol(PQgetvalue(done, 0, 0));
        if (completed > 0) {
            task_fail(&ctx, "goal_id", 0,
                      "goal %s already has %ld completed blocks; planning it again would discard "
                      "that progress",
                      goal_id, completed);
            goto out;
        }
    }
    plan_result plan;
    char why[128];
    if (plan_goal(title, description, complexity, hours, &plan, why, sizeof why) != 0) {
        task_fail(&ctx, strstr(why, "simple") ? "complexity_level" : "goal_description", 0, "%s",
                  why);
        goto out;
    }
    cJSON *blocks = cJSON_CreateArray();
    for (int i = 0; i < plan.nblocks; i++) {
        char block_id[200];
        snprintf(block_id, sizeof block_id, "%s:%d", goal_id, i + 1);
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "block_id", block_id);
        cJSON_AddNumberToObject(b, "block_index", i + 1);
        cJSON_AddStringToObject(b, "description", plan.blocks[i].description);
        cJSON_AddStringToObject(b, "kind", plan.blocks[i].kind);
        cJSON_AddNumberToObject(b, "estimated_minutes", plan.blocks[i].minutes);
        cJSON_AddStringToObject(b, "size", block_size(plan.blocks[i].minutes));
        cJSON_AddItemToArray(blocks, b);
    }
    blocks_json = cJSON_PrintUnformatted(blocks);
    char hours_s[32], task_id[64];
    snprintf(hours_s, sizeof hours_s, "%.17g", hours);
    snprintf(task_id, sizeof task_id, "%s", aipalq_job_id(job));
    const char *up[] = {goal_id,
                        user,
                        description,
                        complexity,
                        hours > 0 ? hours_s : NULL,
                        task_id,
                        blocks_json ? blocks_json : "[]"};
    if (task_exec(
            &ctx,
            "INSERT INTO ffe_goals (goal_id, user_id, description, complexity_level,"
            " available_hours, planned_at, plan_task_id)"
            " VALUES ($1, $2, $3, $4, $5::float8, now(), $6::uuid)"
            " ON CONFLICT (goal_id) DO UPDATE SET description = EXCLUDED.description,"
            " complexity_level = EXCLUDED.complexity_level,"
            " available_hours = coalesce(EXCLUDED.available_hours, ffe_goals.available_hours),"
            " planned_at = now(), plan_task_id = EXCLUDED.plan_task_id",
            6, up) != 0 ||
        task_exec(&ctx, "DELETE FROM atomic_blocks WHERE goal_id = $1", 1, up) != 0) {
        cJSON_Delete(blocks);
        goto out;
    }
    const char *bp[] = {goal_id, user, blocks_json ? blocks_json : "[]"};
    if (task_exec(
            &ctx,
            "INSERT INTO atomic_blocks (block_id, goal_id, user_id, description, block_index,"
            " size, kind, estimated_minutes)"
            " SELECT x.block_id, $1, $2, x.description, x.block_index, x.size, x.kind,"
            " x.estimated_minutes FROM jsonb_to_recordset($3::jsonb) AS x(block_id text,"
            " description text, block_index int, size text, kind text, estimated_minutes int)",
            3, bp) != 0 ||
        task_exec(&ctx, "COMMIT", 0, NULL) != 0) {
        cJSON_Delete(blocks);
        goto out;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "goal_id", goal_id);
    cJSON_AddStringToObject(r, "user_id", user);
    if (title)
        cJSON_AddStringToObject(r, "title", title);
    else
        cJSON_AddNullToObject(r, "title");
    cJSON_AddStringToObject(r, "complexity_level", complexity);
    cJSON_AddItemToObject(r, "blocks", blocks);
    cJSON_AddNumberToObject(r, "total_minutes", plan.planned_minutes);
    if (plan.available_minutes > 0)
        cJSON_AddNumberToObject(r, "available_minutes", plan.available_minutes);
    else
        cJSON_AddNullToObject(r, "available_minutes");
    cJSON_AddBoolToObject(r, "fits_available_hours", plan.fits);
    cJSON_AddNumberToObject(r, "clauses_found", plan.clauses);
    task_add_time(r, "deadline", deadline_ms);
    if (deadline_ms > 0) {
        now = task_sql(&ctx, "SELECT (extract(epoch FROM now()) * 1000)::bigint", 0, NULL);
        if (!now) {
            cJSON_Delete(r);
            goto out;
        }
        double days = (double)(deadline_ms - strtoll(PQgetvalue(now, 0, 0), NULL, 10)) / 86400000.0;
        cJSON_AddNumberToObject(r, "days_to_deadline", days);
        if (days > 0)
            cJSON_AddNumberToObject(r, "required_minutes_per_day", plan.planned_minutes / days);
        else
            cJSON_AddNullToObject(r, "required_minutes_per_day");
    }
    cJSON_AddStringToObject(r, "method",
                            "clauses-and-weights/1 (daemons/worker/compute/planner.h)");
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "blocks", plan.nblocks);
    cJSON_AddNumberToObject(counts, "clauses", plan.clauses);
    cJSON_AddNumberToObject(counts, "total_minutes", plan.planned_minutes);
    task_succeed(&ctx, r, counts);
out:
    free(blocks_json);
    PQclear(goal);
    PQclear(done);
    PQclear(now);
    task_end(&ctx);
}

void handle_track_ffe_progress(aipalq_job *job, void *userdata)
{
    task_ctx ctx;
    PGresult *goal = NULL, *blocks = NULL;
    ffe_block_state *st = NULL;
    if (task_begin(&ctx, job, userdata) != 0)
        goto out;
    const char *goal_id = task_str(&ctx, "goal_id", "");
    const char *user = task_str(&ctx, "user_id", "");
    const char *gp[] = {goal_id};
    goal =
        task_sql(&ctx,
                 "SELECT user_id, title, status, (extract(epoch FROM created_at) * 1000)::bigint,"
                 " (extract(epoch FROM deadline) * 1000)::bigint,"
                 " (extract(epoch FROM now()) * 1000)::bigint"
                 " FROM ffe_goals WHERE goal_id = $1",
                 1, gp);
    if (!goal)
        goto out;
    if (PQntuples(goal) == 0) {
        task_fail(&ctx, "goal_id", 0, "no goal %s", goal_id);
        goto out;
    }
    if (strcmp(PQgetvalue(goal, 0, 0), user) != 0) {
        task_fail(&ctx, "user_id", 0, "goal %s belongs to another user", goal_id);
        goto out;
    }
    int64_t created = strtoll(PQgetvalue(goal, 0, 3), NULL, 10);
    int64_t deadline = PQgetisnull(goal, 0, 4) ? 0 : strtoll(PQgetvalue(goal, 0, 4), NULL, 10);
    int64_t now = strtoll(PQgetvalue(goal, 0, 5), NULL, 10);
    blocks = task_sql(&ctx,
                      "SELECT coalesce(estimated_minutes, 0), completed,"
                      " coalesce((extract(epoch FROM completed_at) * 1000)::bigint, 0),"
                      " block_index, description"
                      " FROM atomic_blocks WHERE goal_id = $1 ORDER BY block_index",
                      1, gp);
    if (!blocks)
        goto out;
    int n = PQntuples(blocks);
    st = calloc((size_t)(n ? n : 1), sizeof *st);
    if (!st) {
        task_fail(&ctx, NULL, 1, "out of memory");
        goto out;
    }
    int next = -1;
    for (int i = 0; i < n; i++) {
        st[i].minutes = atoi(PQgetvalue(blocks, i, 0));
        st[i].completed = PQgetvalue(blocks, i, 1)[0] == 't';
        st[i].completed_ms = strtoll(PQgetvalue(blocks, i, 2), NULL, 10);
        if (!st[i].completed && next < 0)
            next = i;
    }
    ffe_progress p;
    ffe_compute_progress(st, (size_t)n, created, deadline, now, &p);
    const char *status = PQgetvalue(goal, 0, 2);
    if (p.total_blocks > 0 && p.completed_blocks == p.total_blocks &&
        strcmp(status, "completed") != 0) {
        char fin[32];
        snprintf(fin, sizeof fin, "%lld", (long long)p.finished_ms);
        const char *cp[] = {goal_id, fin};
        if (task_exec(&ctx,
                      "UPDATE ffe_goals SET status = 'completed',"
                      " completed_at = to_timestamp($2::bigint / 1000.0) WHERE goal_id = $1",
                      2, cp) != 0)
            goto out;
        status = "completed";
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "goal_id", goal_id);
    cJSON_AddStringToObject(r, "user_id", user);
    if (PQgetisnull(goal, 0, 1))
        cJSON_AddNullToObject(r, "title");
    else
        cJSON_AddStringToObject(r, "title", PQgetvalue(goal, 0, 1));
    cJSON_AddStringToObject(r, "status", status);
    cJSON_AddNumberToObject(r, "total_blocks", p.total_blocks);
    cJSON_AddNumberToObject(r, "completed_blocks", p.completed_blocks);
    cJSON_AddNumberToObject(r, "completion_percent", p.completion_percent);
    cJSON_AddNumberToObject(r, "blocks_percent", p.blocks_percent);
    cJSON_AddNumberToObject(r, "total_minutes", p.total_minutes);
    cJSON_AddNumberToObject(r, "completed_minutes", p.completed_minutes);
    cJSON_AddNumberToObject(r, "remaining_minutes", p.remaining_minutes);
    cJSON_AddNumberToObject(r, "elapsed_days", p.elapsed_days);
    cJSON_AddNumberToObject(r, "velocity_minutes_per_day", p.velocity_minutes_per_day);
    task_add_time(r, "projected_finish", p.projected_finish_ms);
    task_add_time(r, "deadline", deadline);
    if (p.on_track < 0)
        cJSON_AddNullToObject(r, "on_track");
    else
        cJSON_AddBoolToObject(r, "on_track", p.on_track);
    if (deadline)
        cJSON_AddNumberToObject(r, "days_to_deadline", p.days_to_deadline);
    if (next >= 0) {
        cJSON *nb = cJSON_AddObjectToObject(r, "next_block");
        cJSON_AddNumberToObject(nb, "block_index", atoi(PQgetvalue(blocks, next, 3)));
        cJSON_AddStringToObject(nb, "description", PQgetvalue(blocks, next, 4));
        cJSON_AddNumberToObject(nb, "estimated_minutes", st[next].minutes);
    } else {
        cJSON_AddNullToObject(r, "next_block");
    }
    cJSON *counts = cJSON_CreateObject();
    cJSON_AddNumberToObject(counts, "blocks", p.total_blocks);
    cJSON_AddNumberToObject(counts, "completed_blocks", p.completed_blocks);
    task_succeed(&ctx, r, counts);
out:
    free(st);
    PQclear(goal);
    PQclear(blocks);
    task_end(&ctx);
}
