/* libaipalq version macros.
 *
 * Compatibility promise: within one major version the ABI is stable. Functions
 * and status codes are only ever added; nothing is renumbered or removed, and a
 * change of behaviour gets a new function name. The shared library's SONAME is
 * libaipalq.so.MAJOR.
 */
#ifndef AIPAL_VERSION_H
#define AIPAL_VERSION_H

#define AIPALQ_VERSION_MAJOR  1
#define AIPALQ_VERSION_MINOR  0
#define AIPALQ_VERSION_PATCH  0
#define AIPALQ_VERSION_STRING "1.0.0"

/* One integer for compile-time comparisons: 0xMMmmpp. */
#define AIPALQ_VERSION_HEX                                                                         \
    ((AIPALQ_VERSION_MAJOR << 16) | (AIPALQ_VERSION_MINOR << 8) | AIPALQ_VERSION_PATCH)

/* The PostgreSQL schema version this library migrates to and expects. */
#define AIPALQ_SCHEMA_VERSION 7

#endif
