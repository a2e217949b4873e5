/* Unit tests of Redis URL parsing (lib/url.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

static aipalq__redis_target parse_ok(const char *url)
{
    aipalq__redis_target t;
    char err[256] = "";
    aipalq_status st = aipalq__redis_url_parse(url, &t, err, sizeof err);
    ck_assert_msg(st == AIPALQ_OK, "'%s' should parse, got %s: %s", url, aipalq_status_name(st),
                  err);
    return t;
}

static void parse_bad(const char *url)
{
    aipalq__redis_target t;
    char err[256] = "";
    aipalq_status st = aipalq__redis_url_parse(url, &t, err, sizeof err);
    ck_assert_msg(st == AIPALQ_EBADURL, "'%s' should be refused, got %s", url ? url : "(null)",
                  aipalq_status_name(st));
    ck_assert_msg(strncmp(err, "bad Redis URL: ", 15) == 0 && strlen(err) > 15,
                  "'%s': the reason should be given, got '%s'", url ? url : "(null)", err);
}

START_TEST(test_host_only)
{
    aipalq__redis_target t = parse_ok("redis://localhost");
    ck_assert_str_eq(t.host, "localhost");
    ck_assert_int_eq(t.port, 6379);
    ck_assert_int_eq(t.db, 0);
    ck_assert_str_eq(t.user, "");
    ck_assert_str_eq(t.password, "");
    ck_assert(!t.unix_socket);
}
END_TEST

START_TEST(test_port_and_db)
{
    aipalq__redis_target t = parse_ok("redis://127.0.0.1:6380/2");
    ck_assert_str_eq(t.host, "127.0.0.1");
    ck_assert_int_eq(t.port, 6380);
    ck_assert_int_eq(t.db, 2);
    t = parse_ok("redis://h:1/0");
    ck_assert_int_eq(t.port, 1);
    t = parse_ok("redis://h:65535/100000");
    ck_assert_int_eq(t.port, 65535);
    ck_assert_int_eq(t.db, 100000);
    t = parse_ok("redis://h/");
    ck_assert_int_eq(t.db, 0);
    ck_assert_int_eq(t.port, 6379);
    t = parse_ok("redis://h/15");
    ck_assert_int_eq(t.db, 15);
}
END_TEST

START_TEST(test_password_only)
{
    aipalq__redis_target t = parse_ok("redis://:s3cret@redis.example.com:7000/1");
    ck_assert_str_eq(t.user, "");
    ck_assert_str_eq(t.password, "s3cret");
    ck_assert_str_eq(t.host, "redis.example.com");
    ck_assert_int_eq(t.port, 7000);
    ck_assert_int_eq(t.db, 1);
}
END_TEST

START_TEST(test_user_and_password)
{
    aipalq__redis_target t = parse_ok("redis://alice:pw@host");
    ck_assert_str_eq(t.user, "alice");
    ck_assert_str_eq(t.password, "pw");
    ck_assert_str_eq(t.host, "host");
    ck_assert_int_eq(t.port, 6379);
    /* The last '@' separates the credentials from the host. */
    t = parse_ok("redis://:p@ss@host:1234");
    ck_assert_str_eq(t.password, "p@ss");
    ck_assert_str_eq(t.host, "host");
    ck_assert_int_eq(t.port, 1234);
    /* A colon in the password is kept (only the first separates the user). */
    t = parse_ok("redis://bob:a:b@host");
    ck_assert_str_eq(t.user, "bob");
    ck_assert_str_eq(t.password, "a:b");
}
END_TEST

START_TEST(test_percent_escapes)
{
    aipalq__redis_target t = parse_ok("redis://us%40er:p%40ss%3Aw%2F%25@host");
    ck_assert_str_eq(t.user, "us@er");
    ck_assert_str_eq(t.password, "p@ss:w/%");
    t = parse_ok("redis://:%e2%82%ac@host");
    ck_assert_str_eq(t.password, "\xe2\x82\xac");
    parse_bad("redis://:%zz@host");  /* not hex */
    parse_bad("redis://:%4@host");   /* truncated */
    parse_bad("redis://:abc%@host"); /* truncated at the end */
    parse_bad("redis://:%00@host");  /* NUL cannot be passed on */
    parse_bad("redis://:%+1@host");  /* strtol would take a sign */
    parse_bad("redis://:% 1@host");  /* or leading blanks */
    parse_bad("redis://:%-1@host");
    parse_bad("redis://u%zz:pw@host");
}
END_TEST

START_TEST(test_ipv6)
{
    aipalq__redis_target t = parse_ok("redis://[::1]:6380/3");
    ck_assert_str_eq(t.host, "::1");
    ck_assert_int_eq(t.port, 6380);
    ck_assert_int_eq(t.db, 3);
    t = parse_ok("redis://[fe80::1:2]");
    ck_assert_str_eq(t.host, "fe80::1:2");
    ck_assert_int_eq(t.port, 6379);
    t = parse_ok("redis://:pw@[2001:db8::7]:1/");
    ck_assert_str_eq(t.host, "2001:db8::7");
    ck_assert_str_eq(t.password, "pw");
    ck_assert_int_eq(t.port, 1);
    parse_bad("redis://[::1");
    parse_bad("redis://[]:6379");
    parse_bad("redis://[::1]x");
    parse_bad("redis://[::1]:");
    parse_bad("redis://[::1]:70000");
    parse_bad("redis://::1");
}
END_TEST

START_TEST(test_unix_sockets)
{
    aipalq__redis_target t = parse_ok("unix:///tmp/redis.sock");
    ck_assert(t.unix_socket);
    ck_assert_str_eq(t.host, "/tmp/redis.sock");
    ck_assert_int_eq(t.db, 0);
    t = parse_ok("unix:///var/run/r.sock?db=4");
    ck_assert(t.unix_socket);
    ck_assert_str_eq(t.host, "/var/run/r.sock");
    ck_assert_int_eq(t.db, 4);
    t = parse_ok("redis+unix:///run/redis/redis.sock");
    ck_assert(t.unix_socket);
    ck_assert_str_eq(t.host, "/run/redis/redis.sock");
    parse_bad("unix://");
    parse_bad("unix://relative.sock");
    parse_bad("unix:///tmp/s?db=x");
    parse_bad("unix:///tmp/s?db=");
    parse_bad("unix:///tmp/s?foo=1");
    parse_bad("redis+unix://tmp/s");
}
END_TEST

START_TEST(test_missing_host)
{
    parse_bad("redis://");
    parse_bad("redis://:6379");
    parse_bad("redis://:pw@");
    parse_bad("redis://user:pw@:6379/0");
    parse_bad("redis:///0");
}
END_TEST

START_TEST(test_bad_port)
{
    parse_bad("redis://host:");
    parse_bad("redis://host:0");
    parse_bad("redis://host:65536");
    parse_bad("redis://host:-1");
    parse_bad("redis://host:+80");
    parse_bad("redis://host:80a");
    parse_bad("redis://host:port");
    parse_bad("redis://host:12345678901");
    parse_bad("redis://host:99999999999999999999");
}
END_TEST

START_TEST(test_bad_db_and_tail)
{
    parse_bad("redis://host/abc");
    parse_bad("redis://host/-1");
    parse_bad("redis://host/100001");
    parse_bad("redis://host/1/2");
    parse_bad("redis://host/1?timeout=3");
    parse_bad("redis://host?x");
    parse_bad("redis://host#frag");
}
END_TEST

START_TEST(test_schemes)
{
    parse_bad(NULL);
    parse_bad("");
    parse_bad("rediss://host:6380");
    parse_bad("http://host");
    parse_bad("REDIS://host");
    parse_bad("host:6379");
    parse_bad("redis:/host");
    /* rediss is refused with a reason that says why */
    aipalq__redis_target t;
    char err[256];
    aipalq__redis_url_parse("rediss://h", &t, err, sizeof err);
    ck_assert_msg(strstr(err, "TLS") != NULL, "reason: %s", err);
}
END_TEST

START_TEST(test_lengths)
{
    char url[1024], host[300];
    memset(host, 'h', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(url, sizeof url, "redis://%s:1", host);
    parse_bad(url); /* host longer than 255 */
    host[255] = '\0';
    snprintf(url, sizeof url, "redis://%s:1", host);
    aipalq__redis_target t = parse_ok(url);
    ck_assert_uint_eq(strlen(t.host), 255);
    char pw[300];
    memset(pw, 'p', sizeof pw - 1);
    pw[sizeof pw - 1] = '\0';
    snprintf(url, sizeof url, "redis://:%s@h", pw);
    parse_bad(url); /* password longer than its buffer */
    pw[255] = '\0';
    snprintf(url, sizeof url, "redis://:%s@h", pw);
    t = parse_ok(url);
    ck_assert_uint_eq(strlen(t.password), 255);
    char path[300];
    memset(path, 's', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    snprintf(url, sizeof url, "unix://%s", path);
    parse_bad(url);
}
END_TEST

START_TEST(test_small_error_buffer)
{
    aipalq__redis_target t;
    char err[12];
    memset(err, 'X', sizeof err);
    ck_assert_int_eq(aipalq__redis_url_parse("redis://host:0", &t, err, 8), AIPALQ_EBADURL);
    ck_assert_uint_eq(strlen(err), 7);
    ck_assert_int_eq(err[8], 'X'); /* nothing written past errlen */
}
END_TEST

START_TEST(test_output_reset)
{
    /* A failed parse leaves no half-filled target behind. */
    aipalq__redis_target t;
    char err[64];
    memset(&t, 0x55, sizeof t);
    aipalq__redis_url_parse("redis://alice:pw@host:badport", &t, err, sizeof err);
    aipalq__redis_url_parse("redis://x", &t, err, sizeof err);
    ck_assert_str_eq(t.user, "");
    ck_assert_str_eq(t.password, "");
    ck_assert_int_eq(t.port, 6379);
    ck_assert_int_eq(t.db, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("url");
    TCase *tc = tcase_create("parse");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_host_only);
    tcase_add_test(tc, test_port_and_db);
    tcase_add_test(tc, test_password_only);
    tcase_add_test(tc, test_user_and_password);
    tcase_add_test(tc, test_percent_escapes);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_unix_sockets);
    tcase_add_test(tc, test_missing_host);
    tcase_add_test(tc, test_bad_port);
    tcase_add_test(tc, test_bad_db_and_tail);
    tcase_add_test(tc, test_schemes);
    tcase_add_test(tc, test_lengths);
    tcase_add_test(tc, test_small_error_buffer);
    tcase_add_test(tc, test_output_reset);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
