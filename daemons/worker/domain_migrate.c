/* Domain migrations; see domain_migrate.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain_migrate.h"
#include "log.h"

extern const unsigned char aipal_worker_migration_001[], aipal_worker_migration_002[],
    aipal_worker_migration_003[], aipal_worker_migration_004[], aipal_worker_migration_005[],
    aipal_worker_migration_006[];

static const struct {
    int version;
    const char *name;
    const unsigned char *sql;
} migrations[] = {
    {1, "ari", aipal_worker_migration_001},   {2, "ffe", aipal_worker_migration_002},
    {3, "edm", aipal_worker_migration_003},   {4, "models", aipal_worker_migration_004},
    {5, "audit", aipal_worker_migration_005}, {6, "scheduler", aipal_worker_migration_006},
};

#define COUNT ((int)(sizeof migrations / sizeof migrations[0]))

/* Lock id: the bytes "aipaldom". */
#define LOCK_ID "7019265057966288749"

int domain_schema_latest(void)
{
    return migrations[COUNT - 1].version;
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static int current_version(PGconn *c, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM aipal_domain_schema");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int v = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static int apply(PGconn *c, int i, char *err, size_t errlen)
{
    char why[1024];
    if (exec_ok(c, "BEGIN", why, sizeof why) != 0) {
        snprintf(err, errlen, "domain migration %d: %s", migrations[i].version, why);
        return -1;
    }
    if (exec_ok(c, (const char *)migrations[i].sql, why, sizeof why) != 0) {
        snprintf(err, errlen, "domain migration %d (%s) failed: %s", migrations[i].version,
                 migrations[i].name, why);
        exec_ok(c, "ROLLBACK", why, sizeof why);
        return -1;
    }
    char v[16];
    snprintf(v, sizeof v, "%d", migrations[i].version);
    const char *params[] = {v, migrations[i].name};
    PGresult *r = PQexecParams(c, "INSERT INTO aipal_domain_schema (version, name) VALUES ($1, $2)",
                               2, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "domain migration %d: %s", migrations[i].version,
                 PQresultErrorMessage(r));
    PQclear(r);
    if (ok && exec_ok(c, "COMMIT", why, sizeof why) != 0) {
        snprintf(err, errlen, "domain migration %d: commit: %s", migrations[i].version, why);
        ok = 0;
    }
    if (!ok)
        exec_ok(c, "ROLLBACK", why, sizeof why);
    return ok ? 0 : -1;
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    log_msg(LOG_DEBUG, "db.notice", "%s", message);
}

int domain_migrate(PGconn *c, char *err, size_t errlen)
{
    char why[1024];
    PQsetNoticeProcessor(c, on_notice, NULL);
    if (exec_ok(c, "SELECT pg_advisory_lock(" LOCK_ID ")", why, sizeof why) != 0) {
        snprintf(err, errlen, "domain migrations: lock: %s", why);
        return -1;
    }
    int version = -1;
    if (exec_ok(c,
                "CREATE TABLE IF NOT EXISTS aipal_domain_schema ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                why, sizeof why) != 0) {
        snprintf(err, errlen, "domain migrations: %s", why);
        goto out;
    }
    version = current_version(c, why, sizeof why);
    if (version < 0) {
        snprintf(err, errlen, "domain migrations: %s", why);
        goto out;
    }
    if (version > domain_schema_latest()) {
        snprintf(err, errlen,
                 "the domain schema is at version %d; this aipal-worker knows up to %d", version,
                 domain_schema_latest());
        version = -1;
        goto out;
    }
    for (int i = 0; i < COUNT; i++) {
        if (migrations[i].version <= version)
            continue;
        if (apply(c, i, err, errlen) != 0) {
            version = -1;
            goto out;
        }
        version = migrations[i].version;
    }
out:
    exec_ok(c, "SELECT pg_advisory_unlock(" LOCK_ID ")", why, sizeof why);
    return version;
}
