/* Schema migrations: numbered SQL files compiled into the library, applied in
 * order, each in its own transaction, under an advisory lock so that many
 * processes starting at once apply each migration exactly once. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

extern const unsigned char aipalq__migration_001[];
extern const unsigned char aipalq__migration_002[];
extern const unsigned char aipalq__migration_003[];
extern const unsigned char aipalq__migration_004[];
extern const unsigned char aipalq__migration_005[];
extern const unsigned char aipalq__migration_006[];
extern const unsigned char aipalq__migration_007[];

static const struct {
    int version;
    const unsigned char *sql;
} migrations[] = {
    /* clang-format off */
    {1, aipalq__migration_001},
    {2, aipalq__migration_002},
    {3, aipalq__migration_003},
    {4, aipalq__migration_004},
    {5, aipalq__migration_005},
    {6, aipalq__migration_006},
    {7, aipalq__migration_007},
    /* clang-format on */
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

/* Lock id: the bytes "aipalqmg". */
#define MIGRATE_LOCK "7019893431470974823"

static aipalq_status read_version(aipalq_client *c, int *version)
{
    PGresult *res;
    aipalq_status st =
        aipalq__pg_exec(c, "SELECT to_regclass('aipalq_schema') IS NOT NULL", 0, NULL, &res);
    if (st != AIPALQ_OK)
        return st;
    bool exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    *version = 0;
    if (!exists)
        return AIPALQ_OK;
    st = aipalq__pg_exec(c, "SELECT coalesce(max(version), 0) FROM aipalq_schema", 0, NULL, &res);
    if (st != AIPALQ_OK)
        return st;
    *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return AIPALQ_OK;
}

aipalq_status aipalq_schema_version(aipalq_client *c, int *version)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    if (!version)
        return aipalq__fail(c, AIPALQ_EINVAL, "version must not be NULL");
    aipalq_status st = read_version(c, version);
    return st == AIPALQ_OK ? aipalq__ok(c) : st;
}

static aipalq_status apply(aipalq_client *c, int index)
{
    aipalq_status st = aipalq__pg_exec(c, "BEGIN", 0, NULL, NULL);
    if (st != AIPALQ_OK)
        return st;
    /* Simple-query protocol: a migration file holds many statements. */
    PGresult *res = PQexec(c->pg, (const char *)migrations[index].sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = aipalq__fail(c, AIPALQ_EPG, "migration %d failed: %s", migrations[index].version,
                          PQresultErrorMessage(res));
        PQclear(res);
        aipalq__pg_exec(c, "ROLLBACK", 0, NULL, NULL);
        return st;
    }
    PQclear(res);
    char v[16];
    snprintf(v, sizeof v, "%d", migrations[index].version);
    const char *params[] = {v};
    st = aipalq__pg_exec(c, "INSERT INTO aipalq_schema (version) VALUES ($1)", 1, params, NULL);
    if (st == AIPALQ_OK)
        st = aipalq__pg_exec(c, "COMMIT", 0, NULL, NULL);
    if (st != AIPALQ_OK)
        aipalq__pg_exec(c, "ROLLBACK", 0, NULL, NULL);
    return st;
}

aipalq_status aipalq_migrate(aipalq_client *c)
{
    if (!aipalq__client_ok(c))
        return AIPALQ_EMISUSE;
    aipalq_status st =
        aipalq__pg_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", 0, NULL, NULL);
    if (st != AIPALQ_OK)
        return st;
    st = aipalq__pg_exec(c,
                         "CREATE TABLE IF NOT EXISTS aipalq_schema ("
                         " version integer PRIMARY KEY,"
                         " applied_at timestamptz NOT NULL DEFAULT now())",
                         0, NULL, NULL);
    int version = 0;
    if (st == AIPALQ_OK)
        st = read_version(c, &version);
    if (st == AIPALQ_OK && version > AIPALQ_SCHEMA_VERSION)
        st = aipalq__fail(c, AIPALQ_ESCHEMA,
                          "database schema is version %d; this libaipalq %s knows up to %d",
                          version, AIPALQ_VERSION_STRING, AIPALQ_SCHEMA_VERSION);
    for (int i = 0; st == AIPALQ_OK && i < MIGRATION_COUNT; i++)
        if (migrations[i].version > version)
            st = apply(c, i);
    if (st == AIPALQ_OK)
        st = aipalq__pg_exec(c, "SELECT aipalq_ensure_partitions()", 0, NULL, NULL);
    /* A lost connection releases the lock by itself. */
    if (c->pg) {
        char saved[AIPALQ__ERRMSG_SIZE];
        snprintf(saved, sizeof saved, "%s", c->errmsg);
        aipalq_status saved_st = c->last_status;
        aipalq__pg_exec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", 0, NULL, NULL);
        if (st != AIPALQ_OK) {
            c->last_status = saved_st;
            snprintf(c->errmsg, sizeof c->errmsg, "%s", saved);
        }
    }
    return st == AIPALQ_OK ? aipalq__ok(c) : st;
}
