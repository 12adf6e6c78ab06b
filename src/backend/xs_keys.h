/*
 * xs_keys.h - every xenstore key name the control plane reads or writes, in
 * one place (docs/protocol.md §1; blkif.h;
 * torvalds/linux:drivers/block/xen-blkback/xenbus.c@v6.1).
 * Paths are built as
 * "<dir>/<key>"; nothing outside src/backend/ should need these.
 */
#ifndef XBD_XS_KEYS_H
#define XBD_XS_KEYS_H

/* ---- layout (docs/protocol.md §1 (xenstore)) ----------------------------- */
#define XSK_DOMAIN_FMT          "/local/domain/%u"          /* home of a domain */
#define XSK_BACKEND_DIR         "backend"                   /* <home>/backend/<kind> */
#define XSK_KIND_VBD            "vbd"                       /* backendtype=phy */
#define XSK_KIND_VBD3           "vbd3"                      /* Xen >= 4.19 backendtype=tap */
#define XSK_SELF_DOMID          "domid"                     /* relative: our own domid */
#define XSK_ERROR_DIR           "error"                     /* <home>/error/<be-rel>/error (Linux) */

/* ---- written by the toolstack in the backend dir (docs/protocol.md §1.1) -- */
#define XSK_FRONTEND            "frontend"
#define XSK_FRONTEND_ID         "frontend-id"
#define XSK_ONLINE              "online"
#define XSK_STATE               "state"
#define XSK_PARAMS              "params"
#define XSK_MODE                "mode"                      /* "w" or "r" */
#define XSK_DEV                 "dev"                       /* libxl: the vdev, "xvdb" */
#define XSK_DEVICE_TYPE         "device-type"               /* "disk" or "cdrom" */
#define XSK_REMOVABLE           "removable"
#define XSK_DISCARD_ENABLE      "discard-enable"
#define XSK_TYPE                "type"

/* ---- written by hotplug scripts (docs/protocol.md §1.1, §6.5) ------------ */
#define XSK_HOTPLUG_STATUS      "hotplug-status"
#define XSK_HOTPLUG_CONNECTED   "connected"

/* ---- we advertise before InitWait (docs/protocol.md §1.2) ----------------- */
#define XSK_MAX_RING_PAGE_ORDER "max-ring-page-order"
#define XSK_MQ_MAX_QUEUES       "multi-queue-max-queues"
#define XSK_MAX_INDIRECT_SEGS   "feature-max-indirect-segments"

/* ---- we advertise at connect (docs/protocol.md §1.2; Linux connect()) ----- */
#define XSK_SECTORS             "sectors"                   /* 512-byte units */
#define XSK_INFO                "info"                      /* VDISK_* bitmap */
#define XSK_SECTOR_SIZE         "sector-size"               /* bytes */
#define XSK_PHYS_SECTOR_SIZE    "physical-sector-size"      /* bytes */
#define XSK_FEATURE_FLUSH       "feature-flush-cache"
#define XSK_FEATURE_BARRIER     "feature-barrier"
#define XSK_FEATURE_DISCARD     "feature-discard"
#define XSK_DISCARD_GRANULARITY "discard-granularity"       /* bytes */
#define XSK_DISCARD_ALIGNMENT   "discard-alignment"         /* bytes */
#define XSK_DISCARD_SECURE      "discard-secure"
#define XSK_FEATURE_PERSISTENT  "feature-persistent"        /* also read from the frontend */
/* vbd3: the pid in the path of the statistics file libxenstat reads
 * (td3_stats.c; tapdisk3's tapback writes tapdisk's pid) */
#define XSK_KTHREAD_PID         "kthread-pid"
#define XSK_GRANT_MODE          "grant-mode"                /* ours, optional: per-device grant mode */
#define XSK_ERROR               "error"                     /* <backend>/error */
/* ours, optional: per-device QoS limits (dataplane.h dp_qos_parse syntax:
 * none | RATE[/BURST]); watched, a change applies live */
#define XSK_QOS_IOPS            "qos-iops"
#define XSK_QOS_READ_IOPS       "qos-read-iops"
#define XSK_QOS_WRITE_IOPS      "qos-write-iops"
#define XSK_QOS_BPS             "qos-bps"
#define XSK_QOS_READ_BPS        "qos-read-bps"
#define XSK_QOS_WRITE_BPS       "qos-write-bps"

/* ---- written by the frontend (docs/protocol.md §1.3) ---------------------- */
#define XSK_RING_REF            "ring-ref"                  /* one page */
#define XSK_RING_REF_N_FMT      "ring-ref%u"                /* with ring-page-order */
#define XSK_RING_PAGE_ORDER     "ring-page-order"
#define XSK_EVENT_CHANNEL       "event-channel"
#define XSK_MQ_NUM_QUEUES       "multi-queue-num-queues"
#define XSK_QUEUE_FMT           "queue-%u"
#define XSK_PROTOCOL            "protocol"

/* `info` bits: blkif.h VDISK_CDROM, VDISK_REMOVABLE, VDISK_READONLY
 * (docs/protocol.md §1.2). */
#define XSK_VDISK_CDROM         1u
#define XSK_VDISK_REMOVABLE     2u
#define XSK_VDISK_READONLY      4u

#endif
