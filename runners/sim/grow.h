/* grow.h: the core's one growing array (the decision log, the chunk's
 * segments, dfs's frames, dpor's clocks). */
#ifndef SIM_GROW_H
#define SIM_GROW_H

#include <stddef.h>
#include <stdlib.h>

/* p with room for need elements of size bytes (*cap updated, doubling); out of
 * memory aborts: a run cannot go on. */
static inline void *sim_grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    if (!(p = realloc(p, c * size)))
        abort();
    *cap = c;
    return p;
}

#endif
