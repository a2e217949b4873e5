/* Forks and connection set-ups kept apart.
 *
 * A prefork worker forks its handler processes while its own threads keep
 * working, and a child inherits every lock as it was at that instant. The
 * libraries behind a connection initialise themselves lazily under locks of
 * their own while a connection is being set up (libpq's GSSAPI probe of the
 * Kerberos credential cache with gssencmode=prefer, OpenSSL's one-time
 * initialisation with sslmode=prefer, the resolver): a child forked in the
 * middle of one inherits that lock held, and hangs for ever at its first
 * connection. Every connection set-up of the library holds this lock shared,
 * and a fork holds it exclusively, so that no set-up is under way in the
 * parent when a child is made. */
#include <pthread.h>

#include "internal.h"

static pthread_rwlock_t guard;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void guard_init(void)
{
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* A fork must not wait behind a stream of connects. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&guard, &attr);
    pthread_rwlockattr_destroy(&attr);
}

void aipalq__connect_begin(void)
{
    pthread_once(&guard_once, guard_init);
    pthread_rwlock_rdlock(&guard);
}

void aipalq__connect_end(void)
{
    pthread_rwlock_unlock(&guard);
}

void aipalq__fork_begin(void)
{
    pthread_once(&guard_once, guard_init);
    pthread_rwlock_wrlock(&guard);
}

void aipalq__fork_end(void)
{
    pthread_rwlock_unlock(&guard);
}

void aipalq__fork_end_in_child(void)
{
    /* The child's only thread is not the one the lock records as its
     * holder: a fresh lock, so that a handler may use clients of its own. */
    guard_init();
}
