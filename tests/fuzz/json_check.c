/* Prints, for each file named, the library's verdict on it as a handler result
 * (aipalq__json_text_check, object_only false): "OK" or the status name.
 * pg_crosscheck.py compares these verdicts with what PostgreSQL's jsonb does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int main(int argc, char **argv)
{
    for (int a = 1; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        if (!f) {
            perror(argv[a]);
            return 2;
        }
        size_t cap = 1 << 20, n = 0;
        char *buf = malloc(cap + 1);
        size_t got;
        while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
            n += got;
        fclose(f);
        if (!buf)
            return 2;
        buf[n] = '\0';
        char err[256] = "";
        aipalq_status st = aipalq__json_text_check(buf, "results", AIPALQ_MAX_RESULT_BYTES, false,
                                                   err, sizeof err);
        printf("%s\t%s\n", aipalq_status_name(st), argv[a]);
        free(buf);
    }
    return 0;
}
