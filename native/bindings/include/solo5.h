/*
 * solo5.h: the Solo5 application interface, as provided by tendril's spt
 * bindings.
 *
 * This header is self-contained: it needs only the compiler's freestanding
 * headers (<stddef.h>, <stdint.h>, <stdbool.h>). It describes the same
 * interface as upstream Solo5's solo5.h for the spt target, ABI version 2,
 * so that applications written against either compile against this one.
 *
 * An application provides solo5_app_main() and uses nothing but the calls
 * below to talk to the outside world. Everything is single-threaded and
 * non-blocking except solo5_yield(), which is the only way to wait.
 */

#ifndef SOLO5_H_INCLUDED
#define SOLO5_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Versioning. TENDRIL_SOLO5_H_VERSION changes whenever a declaration in this
 * file changes; SOLO5_SPT_ABI_VERSION is the tender/guest ABI the bindings
 * implement (the "abi_version" of the ABI1 note).
 */
#define TENDRIL_SOLO5_H_VERSION 1
#define SOLO5_SPT_ABI_VERSION   2

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Results of the calls that can fail. Applications should treat any result
 * other than SOLO5_R_OK and SOLO5_R_AGAIN as a bug on their side: an
 * implementation is free to abort instead of returning EINVAL or EUNSPEC.
 */
typedef enum {
    SOLO5_R_OK = 0,      /* done */
    SOLO5_R_AGAIN = 1,   /* nothing to do right now; try after a yield */
    SOLO5_R_EINVAL = 2,  /* the arguments were wrong */
    SOLO5_R_EUNSPEC = 3  /* the host failed in some other way */
} solo5_result_t;

/*
 * Exit statuses. Values of 255 and above belong to Solo5 itself; an
 * application should use 0..254.
 */
#define SOLO5_EXIT_SUCCESS 0
#define SOLO5_EXIT_FAILURE 1
#define SOLO5_EXIT_ABORT   255

/* Time in nanoseconds. */
typedef uint64_t solo5_time_t;

/* A device, as returned by the *_acquire() calls. */
typedef uint64_t solo5_handle_t;

/* A set of handles: bit N stands for handle N, so at most 64 devices. */
typedef uint64_t solo5_handle_set_t;

/* A byte offset or size on a block device. */
typedef uint64_t solo5_off_t;

/* Length of an Ethernet address and of an Ethernet header, in bytes. */
#define SOLO5_NET_ALEN 6
#define SOLO5_NET_HLEN 14

/*
 * What the application is given at start.
 *
 * cmdline:    the guest command line, with the options the bindings
 *             consumed (leading "--solo5:..." words) already removed.
 * heap_start,
 * heap_size:  one region of RW memory the application may use as it likes.
 *             The initial stack lives at its top and grows down into it, so
 *             the application must leave room for the stack. The region is
 *             not executable (unless the tender was told otherwise).
 *
 * Nothing else about the address space may be relied upon.
 */
struct solo5_start_info {
    const char *cmdline;
    uintptr_t heap_start;
    size_t heap_size;
};

/*
 * The application entry point, called once after the bindings are set up.
 * Returning from it is the same as calling solo5_exit() with the value.
 */
int solo5_app_main(const struct solo5_start_info *info);

/*
 * Stop the guest with a status. Only the low 8 bits reach the host.
 */
void solo5_exit(int status) __attribute__((noreturn));

/*
 * Stop the guest abnormally (status SOLO5_EXIT_ABORT). Tenders that can
 * write core files may do so; spt simply exits.
 */
void solo5_abort(void) __attribute__((noreturn));

/*
 * Thread-local storage, local-exec model only (x86_64 "variant II": the
 * thread pointer sits just past the TLS data and points at itself).
 *
 * solo5_tls_size():      bytes needed for one TLS block, TCB included.
 * solo5_tls_tp_offset(): given the start of a block, the value to pass to
 *                        solo5_set_tls_base().
 * solo5_tls_init():      fill a block with the initial TLS image; the block
 *                        should be aligned to at least 16 bytes (more if the
 *                        program's TLS variables ask for it). EINVAL if
 *                        tls is 0.
 * solo5_set_tls_base():  make a block current. EINVAL if the host refuses.
 */
size_t solo5_tls_size(void);
uintptr_t solo5_tls_tp_offset(uintptr_t tls);
solo5_result_t solo5_tls_init(uintptr_t tls);
solo5_result_t solo5_set_tls_base(uintptr_t base);

/*
 * Clocks. The monotonic clock counts from an unspecified point and never
 * goes back; the wall clock counts from the UNIX epoch (UTC) and may jump.
 */
solo5_time_t solo5_clock_monotonic(void);
solo5_time_t solo5_clock_wall(void);

/*
 * Sleep until the monotonic clock reaches `deadline` or at least one network
 * device has data to read, whichever comes first. A deadline in the past
 * returns at once. If ready_set is not NULL it receives the set of network
 * handles that are readable (0 if the deadline was the reason to wake up).
 */
void solo5_yield(solo5_time_t deadline, solo5_handle_set_t *ready_set);

/*
 * Write to the console. Best effort: data may be lost, nothing is reported.
 */
void solo5_console_write(const char *buf, size_t size);

/*
 * Network devices (Ethernet frames).
 *
 * mtu is the largest payload, excluding the Ethernet header: read buffers
 * must hold mtu + SOLO5_NET_HLEN bytes and writes must not exceed that.
 */
struct solo5_net_info {
    uint8_t mac_address[SOLO5_NET_ALEN];
    size_t mtu;
};

/*
 * Get the handle of the network device called `name` in the manifest. Each
 * name can be acquired once; later calls, unknown names and names of other
 * device types give EINVAL.
 */
solo5_result_t solo5_net_acquire(const char *name, solo5_handle_t *handle,
                                 struct solo5_net_info *info);

/*
 * Send one frame (header included). Never blocks; a frame the host cannot
 * take right now may be dropped.
 */
solo5_result_t solo5_net_write(solo5_handle_t handle, const uint8_t *buf,
                               size_t size);

/*
 * Receive one frame (header included) into buf. Never blocks: AGAIN when
 * nothing is queued. On OK, *read_size is the frame length.
 */
solo5_result_t solo5_net_read(solo5_handle_t handle, uint8_t *buf, size_t size,
                              size_t *read_size);

/*
 * Block devices. capacity and block_size are in bytes; capacity is a whole
 * number of blocks.
 */
struct solo5_block_info {
    solo5_off_t capacity;
    solo5_off_t block_size;
};

/* Same rules as solo5_net_acquire(), for block devices. */
solo5_result_t solo5_block_acquire(const char *name, solo5_handle_t *handle,
                                   struct solo5_block_info *info);

/*
 * Transfer whole blocks; all or nothing. offset must be a multiple of
 * block_size and the transfer must lie inside the device. Current
 * implementations (this one included) accept exactly one block per call:
 * any other size gives EINVAL.
 */
solo5_result_t solo5_block_write(solo5_handle_t handle, solo5_off_t offset,
                                 const uint8_t *buf, size_t size);
solo5_result_t solo5_block_read(solo5_handle_t handle, solo5_off_t offset,
                                uint8_t *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SOLO5_H_INCLUDED */
