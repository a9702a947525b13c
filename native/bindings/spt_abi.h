/*
 * tendril bindings: the data the tender hands to the guest (abi.md §2, abi.md §5.2).
 *
 * Layouts here are ABI: they must match byte for byte what solo5-spt (and
 * tendril's loader) write into low memory. Static asserts pin the sizes and
 * offsets given in docs/abi.md.
 */

#ifndef TENDRIL_BINDINGS_SPT_ABI_H
#define TENDRIL_BINDINGS_SPT_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the tender puts struct spt_boot_info; also passed in %rdi. */
#define SPT_BOOT_INFO_BASE 0x11000UL

/* Lowest address a loadable segment may use; where .text starts. */
#define SPT_GUEST_MIN_BASE 0x100000UL

/* Marker the tender gives its timerfd in the epoll set (data.u64). */
#define SPT_INTERNAL_TIMERFD 0xfffffffeULL

struct spt_boot_info {
    uint64_t mem_size;   /* guest memory size, bytes */
    uint64_t kernel_end; /* end of the loaded image (unused here) */
    const char *cmdline; /* NUL-terminated guest command line */
    const void *mft;     /* the tender's filled-in manifest copy */
    int epollfd;         /* host fd: epoll set of timerfd + taps */
    int timerfd;         /* host fd: CLOCK_MONOTONIC timerfd */
};

_Static_assert(sizeof(struct spt_boot_info) == 40, "spt_boot_info size");
_Static_assert(offsetof(struct spt_boot_info, mft) == 24, "bi.mft offset");
_Static_assert(offsetof(struct spt_boot_info, epollfd) == 32,
               "bi.epollfd offset");
_Static_assert(offsetof(struct spt_boot_info, timerfd) == 36,
               "bi.timerfd offset");

/* Manifest (the MFT1 note descriptor and its filled-in copy). */
#define MFT_VERSION     1
#define MFT_NAME_SIZE   68
#define MFT_MAX_ENTRIES 64

enum mft_type {
    MFT_DEV_BLOCK_BASIC = 1,
    MFT_DEV_NET_BASIC = 2,
    MFT_RESERVED_FIRST = 0x40000000
};

struct mft_block_basic {
    uint64_t capacity;   /* bytes */
    uint16_t block_size; /* bytes */
};

struct mft_net_basic {
    uint8_t mac[6];
    uint16_t mtu;
};

struct mft_entry {
    char name[MFT_NAME_SIZE];
    uint32_t type; /* enum mft_type; the ABI fixes it at 4 bytes */
    union {
        struct mft_block_basic block_basic;
        struct mft_net_basic net_basic;
    } u;
    union {
        int hostfd;
        void *data;
    } b;
    bool attached;
};

struct mft {
    uint32_t version;
    uint32_t entries;
    struct mft_entry e[];
};

_Static_assert(sizeof(struct mft_entry) == 104, "mft_entry size");
_Static_assert(offsetof(struct mft_entry, type) == 68, "mft_entry.type");
_Static_assert(offsetof(struct mft_entry, u) == 72, "mft_entry.u");
_Static_assert(offsetof(struct mft_entry, u.block_basic.block_size) == 80,
               "mft_entry.u.block_basic.block_size");
_Static_assert(offsetof(struct mft_entry, u.net_basic.mtu) == 78,
               "mft_entry.u.net_basic.mtu");
_Static_assert(offsetof(struct mft_entry, b) == 88, "mft_entry.b");
_Static_assert(offsetof(struct mft_entry, attached) == 96,
               "mft_entry.attached");
_Static_assert(offsetof(struct mft, e) == 8, "mft.e");

#endif /* TENDRIL_BINDINGS_SPT_ABI_H */
