/* xen_ops_find.c - pick a Xen seam implementation by name (xen_ops.h). */
#include "xen_ops.h"
#include "util.h"

#include <string.h>

const struct xen_ops *xen_ops_find(const char *name)
{
    static const struct xen_ops *const all[] = { &xen_ops_libxen, &xen_ops_sim };
    if (!name)
        return NULL;
    for (unsigned i = 0; i < ARRAY_SIZE(all); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}
