/* The wire format between hull (host) and hull-agent (guest) over the
 * virtio-serial port "org.hull.agent". Shared by both sides; docs/agent-protocol.md
 * is the prose version.
 *
 * Every message is a frame: a 12-byte header then `len` payload bytes.
 * Control messages (REQ, RESP, EXIT) carry one JSON object; data messages
 * (STDIN, STDOUT, STDERR, DATA) carry raw bytes, and a zero-length data frame
 * means end of that stream. The magic lets a reader resynchronise after a
 * peer vanished mid-frame (the host side of the port can disconnect at any
 * time; the guest side never learns which byte the host saw last).
 */
#ifndef HULL_VM_AGENT_PROTO_H
#define HULL_VM_AGENT_PROTO_H

#include <stdint.h>

#define HULL_AGENT_PORT_NAME "org.hull.agent"
#define HULL_AGENT_MAGIC     0x4c4c5548u /* "HULL" as little-endian bytes */
#define HULL_AGENT_VERSION   1
/* Largest payload either side sends or accepts. Data is chunked below it. */
#define HULL_AGENT_MAX_FRAME (1u << 20)
#define HULL_AGENT_CHUNK     (32u << 10)

enum hull_agent_frame_type {
    HULL_FRAME_REQ = 1,    /* host -> guest, JSON {"op": ...} */
    HULL_FRAME_RESP = 2,   /* guest -> host, JSON {"ok": bool, "error": ...} */
    HULL_FRAME_STDIN = 3,  /* host -> guest, raw; empty = EOF */
    HULL_FRAME_STDOUT = 4, /* guest -> host, raw */
    HULL_FRAME_STDERR = 5, /* guest -> host, raw */
    HULL_FRAME_DATA = 6,   /* file bytes, either way; empty = end of file */
    HULL_FRAME_EXIT = 7,   /* guest -> host, JSON result of an exec */
};

struct hull_agent_hdr {
    uint32_t magic;
    uint8_t type;
    uint8_t flags; /* 0 */
    uint16_t reserved;
    uint32_t len;
} __attribute__((packed));

#endif
