/*
 * vbd_qos.c - the QoS limits of a device (xen-blkbackd(8) QOS): per limit the
 * backend key qos-<name> when present, else the config key of the same name
 * (xen-blkbackd.conf(5)).  The keys are watched (vbd.c), so a change applies
 * to the running data plane (dp_set_qos); xen-blkbackctl limit writes them
 * (control.c).  Limits and buckets: dataplane.h, src/ring/qos.c.
 */
#include "backend.h"
#include "config.h"
#include "xs_keys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *const vbd_qos_keys[DP_QOS_N] = {
    [DP_QOS_IOPS] = XSK_QOS_IOPS,           [DP_QOS_READ_IOPS] = XSK_QOS_READ_IOPS,
    [DP_QOS_WRITE_IOPS] = XSK_QOS_WRITE_IOPS, [DP_QOS_BPS] = XSK_QOS_BPS,
    [DP_QOS_READ_BPS] = XSK_QOS_READ_BPS,   [DP_QOS_WRITE_BPS] = XSK_QOS_WRITE_BPS,
};

void vbd_qos_read(struct vbd *v, const struct dp_qos *keep, struct dp_qos *out)
{
    const struct dp_qos *def = &v->be->cfg->qos;
    for (unsigned k = 0; k < DP_QOS_N; k++) {
        char *s = NULL, err[256];
        out->l[k] = def->l[k];
        if (xs_read_str(v->be, v->be_path, vbd_qos_keys[k], &s))
            continue;
        if (dp_qos_parse((enum dp_qos_kind)k, s, &out->l[k], err, sizeof(err))) {
            out->l[k] = keep->l[k];
            VLOG(v, LOG_WARNING, "ignoring %s/%s = '%s': %s", v->be_path, vbd_qos_keys[k], s,
                 err);
        }
        free(s);
    }
}

/* "iops=1000/2000 read-bps=none ..." of q into buf. */
static void qos_line(const struct dp_qos *q, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (unsigned k = 0; k < DP_QOS_N && n < len; k++) {
        char val[48];
        dp_qos_format(&q->l[k], val, sizeof(val));
        int w = snprintf(buf + n, len - n, "%s%s=%s", k ? " " : "",
                         dp_qos_name((enum dp_qos_kind)k), val);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

void vbd_qos_apply(struct vbd *v, const struct dp_qos *q, const char *why)
{
    struct dp_qos cur;
    if (!v->dp)
        return;
    vdp_get_qos(v->dp, &cur);
    if (!memcmp(&cur, q, sizeof(cur)))
        return;
    if (vdp_set_qos(v->dp, q))
        return;                 /* out of range: vbd_qos_read and dp_qos_parse refused it */
    char line[400];
    qos_line(q, line, sizeof(line));
    VLOG(v, LOG_NOTICE, "QoS limits (%s): %s", why, line);
}

void vbd_qos_changed(struct vbd *v)
{
    if (!v->dp)
        return;
    struct dp_qos cur, q;
    vdp_get_qos(v->dp, &cur);
    vbd_qos_read(v, &cur, &q);
    vbd_qos_apply(v, &q, "backend keys");
}
