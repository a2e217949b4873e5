/* The version of the library actually loaded. */
#include "internal.h"

unsigned aipalq_version(void)
{
    return AIPALQ_VERSION_HEX;
}

const char *aipalq_version_string(void)
{
    return AIPALQ_VERSION_STRING;
}
