/* Exponential backoff with jitter for retries. */
#include "internal.h"

int64_t aipalq__backoff_ms(int64_t base_ms, int64_t cap_ms, int jitter_percent, int retry, double r)
{
    if (base_ms <= 0 || retry < 1)
        return 0;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    int64_t delay = base_ms;
    for (int i = 1; i < retry && delay < cap_ms; i++)
        delay = delay > cap_ms / 2 ? cap_ms : delay * 2;
    if (delay > cap_ms)
        delay = cap_ms;
    if (jitter_percent > 0) {
        if (jitter_percent > 100)
            jitter_percent = 100;
        /* Spread over [delay*(1-j), delay*(1+j)) so that tasks that failed
         * together do not come back together. */
        double span = (double)delay * jitter_percent / 100.0;
        double d = (double)delay - span + 2.0 * span * r;
        /* Converting a double beyond INT64_MAX is undefined: saturate. */
        if (d >= 9223372036854775807.0)
            delay = INT64_MAX;
        else
            delay = d > 0 ? (int64_t)d : 0;
    }
    return delay;
}
