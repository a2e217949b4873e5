/* The frames between a prefork worker and its children: a 4-byte length, a
 * 1-byte type, then fields, each a 4-byte length and its bytes. */
#ifndef AIPALQ_PREFORK_PROTO_H
#define AIPALQ_PREFORK_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIPALQ__FRAME_TASK       'T'
#define AIPALQ__FRAME_PROGRESS   'P'
#define AIPALQ__FRAME_RESULT     'R'
#define AIPALQ__FRAME_MAX_FIELDS 12

typedef struct aipalq__frame {
    char type;
    int nfields;
    char *fields[AIPALQ__FRAME_MAX_FIELDS]; /* NUL-terminated copies */
    char *buf;
} aipalq__frame;

/* Writes a frame of n NUL-terminated fields. false on a write error. */
bool aipalq__frame_write(int fd, char type, const char *const *fields, int n);
/* Reads one frame (blocking). false at EOF or on an error. */
bool aipalq__frame_read(int fd, aipalq__frame *f);
void aipalq__frame_free(aipalq__frame *f);

/* In a child: the flags that the parent's signals set. */
int aipalq__child_cancel_flag(void);
int aipalq__child_soft_flag(void);
void aipalq__child_send_progress(int fd, int percent, const char *message);

#endif
