/* Status codes: names and messages, generated from AIPALQ_STATUS_LIST. */
#include "internal.h"

const char *aipalq_strerror(aipalq_status status)
{
    switch (status) {
#define AIPALQ__STATUS_MSG(name, num, msg)                                                         \
    case AIPALQ_##name:                                                                            \
        return msg;
        AIPALQ_STATUS_LIST(AIPALQ__STATUS_MSG)
#undef AIPALQ__STATUS_MSG
    }
    return "unknown status";
}

const char *aipalq_status_name(aipalq_status status)
{
    switch (status) {
#define AIPALQ__STATUS_NAME(name, num, msg)                                                        \
    case AIPALQ_##name:                                                                            \
        return #name;
        AIPALQ_STATUS_LIST(AIPALQ__STATUS_NAME)
#undef AIPALQ__STATUS_NAME
    }
    return "UNKNOWN";
}
