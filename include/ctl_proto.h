/*
 * ctl_proto.h - the control socket protocol shared by xen-blkbackd
 * (src/backend/control.c) and xen-blkbackctl: one request line, one JSON
 * object back.  Every reply carries "proto": XBD_CTL_PROTO_VERSION; a client
 * that sees a larger number than it knows may still read the fields it
 * knows (fields are only ever added).  The requests and replies are
 * documented in docs/control-protocol.md.
 */
#ifndef XBD_CTL_PROTO_H
#define XBD_CTL_PROTO_H

#define XBD_CTL_PROTO_VERSION 1

#endif
