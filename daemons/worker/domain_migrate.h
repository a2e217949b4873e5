/* The AI-Pal domain tables' migrations (daemons/worker/migrations/NNN_*.sql,
 * compiled into the binary), kept apart from the queue's schema: their own
 * version table, aipal_domain_schema (version, name, applied_at). Each
 * migration runs in its own transaction; all of them under a session
 * advisory lock, so that replicas starting together apply each exactly once
 * (later ones find the work done). */
#ifndef AIPAL_WORKER_DOMAIN_MIGRATE_H
#define AIPAL_WORKER_DOMAIN_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

/* The newest version this binary knows. */
int domain_schema_latest(void);

/* Applies the missing migrations on `conn`. Returns the version now in the
 * database, or -1 with a reason in err (a failed migration, or a database
 * newer than this binary). */
int domain_migrate(PGconn *conn, char *err, size_t errlen);

#endif
