/* Unit tests of task ids: UUIDv7 generation and validation (lib/uuid.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

static void check_format(const char *id)
{
    ck_assert_uint_eq(strlen(id), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ck_assert_msg(id[i] == '-', "%s: '-' expected at %d", id, i);
        else
            ck_assert_msg(hexval(id[i]) >= 0, "%s: lowercase hex expected at %d", id, i);
    }
    ck_assert_msg(id[14] == '7', "%s: version nibble must be 7", id);
    ck_assert_msg(strchr("89ab", id[19]) != NULL, "%s: variant must be 10xx", id);
    ck_assert(aipalq__uuid_valid(id));
}

static int64_t id_ms(const char *id)
{
    int64_t ms = 0;
    for (int i = 0; i < 13; i++)
        if (i != 8)
            ms = ms * 16 + hexval(id[i]);
    return ms;
}

START_TEST(test_format)
{
    char id[AIPALQ_ID_SIZE];
    memset(id, 'Z', sizeof id);
    int64_t before = aipalq__now_ms();
    aipalq__uuid7(id);
    ck_assert_int_eq(id[36], '\0');
    check_format(id);
    /* The first 48 bits are Unix milliseconds of about now. */
    int64_t ms = id_ms(id);
    ck_assert_int_ge(ms, before);
    ck_assert_int_le(ms, aipalq__now_ms() + 60000);
    ck_assert_int_eq(AIPALQ_ID_SIZE, 37);
}
END_TEST

#define MANY 100000

START_TEST(test_monotonic_and_unique)
{
    char(*ids)[AIPALQ_ID_SIZE] = malloc((size_t)MANY * AIPALQ_ID_SIZE);
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < MANY; i++) {
        aipalq__uuid7(ids[i]);
        if (i % 997 == 0)
            check_format(ids[i]);
        if (i > 0)
            ck_assert_msg(strcmp(ids[i - 1], ids[i]) < 0, "ids out of order at %d: %s then %s", i,
                          ids[i - 1], ids[i]);
    }
    /* Strictly increasing implies unique; check uniqueness on its own too. */
    qsort(ids, MANY, AIPALQ_ID_SIZE, (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < MANY; i++)
        ck_assert_str_ne(ids[i - 1], ids[i]);
    free(ids);
}
END_TEST

#define PER_THREAD 50000

static void *make_ids(void *arg)
{
    char(*ids)[AIPALQ_ID_SIZE] = arg;
    for (int i = 0; i < PER_THREAD; i++)
        aipalq__uuid7(ids[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

START_TEST(test_unique_across_threads)
{
    enum { NT = 4 };
    char(*ids)[AIPALQ_ID_SIZE] = malloc((size_t)NT * PER_THREAD * AIPALQ_ID_SIZE);
    ck_assert_ptr_nonnull(ids);
    pthread_t th[NT];
    for (int t = 0; t < NT; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, make_ids, ids + (size_t)t * PER_THREAD), 0);
    for (int t = 0; t < NT; t++)
        pthread_join(th[t], NULL);
    /* Each thread's ids are in order. */
    for (int t = 0; t < NT; t++)
        for (int i = 1; i < PER_THREAD; i++)
            ck_assert(strcmp(ids[t * PER_THREAD + i - 1], ids[t * PER_THREAD + i]) < 0);
    qsort(ids, (size_t)NT * PER_THREAD, AIPALQ_ID_SIZE, cmp_id);
    for (int i = 1; i < NT * PER_THREAD; i++)
        ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "duplicate id %s", ids[i]);
    free(ids);
}
END_TEST

/* Children forked after the parent made ids make ids of their own: the
 * random part (the last 16 hex digits) differs between any two of them. */
START_TEST(test_unique_across_forks)
{
    enum { NCHILD = 4 };
    char id[AIPALQ_ID_SIZE];
    aipalq__uuid7(id); /* the parent's generator is seeded before the forks */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    for (int i = 0; i < NCHILD; i++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            char mine[AIPALQ_ID_SIZE];
            aipalq__uuid7(mine);
            (void)!write(fds[1], mine, AIPALQ_ID_SIZE);
            _exit(0);
        }
    }
    close(fds[1]);
    char got[NCHILD][AIPALQ_ID_SIZE];
    for (int i = 0; i < NCHILD; i++) {
        size_t n = 0;
        while (n < AIPALQ_ID_SIZE) {
            ssize_t r = read(fds[0], got[i] + n, AIPALQ_ID_SIZE - n);
            ck_assert_int_gt(r, 0);
            n += (size_t)r;
        }
        check_format(got[i]);
    }
    close(fds[0]);
    while (wait(NULL) > 0)
        ;
    for (int i = 0; i < NCHILD; i++)
        for (int j = i + 1; j < NCHILD; j++)
            ck_assert_msg(strcmp(got[i] + 20, got[j] + 20) != 0,
                          "children made the same random part: %s and %s", got[i], got[j]);
}
END_TEST

START_TEST(test_valid)
{
    ck_assert(aipalq__uuid_valid("0190a5b2-7c3e-7def-8123-456789abcdef"));
    ck_assert(aipalq__uuid_valid("0190A5B2-7C3E-7DEF-8123-456789ABCDEF"));
    ck_assert(aipalq__uuid_valid("00000000-0000-0000-0000-000000000000"));
    ck_assert(!aipalq__uuid_valid(NULL));
    ck_assert(!aipalq__uuid_valid(""));
    ck_assert(!aipalq__uuid_valid("nope"));
    ck_assert(!aipalq__uuid_valid("0190a5b2-7c3e-7def-8123-456789abcde"));   /* 35 */
    ck_assert(!aipalq__uuid_valid("0190a5b2-7c3e-7def-8123-456789abcdef0")); /* 37 */
    ck_assert(!aipalq__uuid_valid("0190a5b2x7c3e-7def-8123-456789abcdef"));
    ck_assert(!aipalq__uuid_valid("0190a5b27c3e7def8123456789abcdef----"));
    ck_assert(!aipalq__uuid_valid("0190a5b2-7c3e-7def-8123-456789abcdeg"));
    ck_assert(!aipalq__uuid_valid("{190a5b2-7c3e-7def-8123-456789abcdef}"));
    ck_assert(!aipalq__uuid_valid("0190a5b2-7c3e-7def-8123-456789abcd f"));
    ck_assert(!aipalq__uuid_valid("0190a5b2-7c3e-7def-8123-456789abcd'f"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("uuid");
    TCase *tc = tcase_create("uuid7");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_monotonic_and_unique);
    tcase_add_test(tc, test_unique_across_threads);
    tcase_add_test(tc, test_unique_across_forks);
    tcase_add_test(tc, test_valid);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
