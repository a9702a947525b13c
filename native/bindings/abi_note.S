/*
 * tendril bindings: the ELF notes and the interpreter string every spt
 * guest carries (abi.md §5.1, abi.md §5.3).
 *
 * The linker script gives each note section its own PT_NOTE, because the
 * tender only looks at the first note of each PT_NOTE segment.
 */

#define SOLO5_ABI_TARGET_SPT 2   /* HVT=1, SPT=2, VIRTIO=3, ... */
#define SOLO5_SPT_ABI_VERSION 2
#define NT_SOLO5_ABI1 0x31494241 /* "ABI1", little endian */

/*
 * An OpenBSD NT_VERSION note, in the first PT_NOTE: OpenBSD would take the
 * guest for one of its own binaries and refuse to run it natively.
 */
        .section .note.solo5.not_openbsd, "a", @note
        .p2align 2
        .long   8                       /* n_namesz */
        .long   4                       /* n_descsz */
        .long   1                       /* n_type: NT_VERSION */
        .ascii  "OpenBSD\0"             /* name, 8 bytes */
        .long   0                       /* desc */

/*
 * The ABI1 note: which tender this guest is for, and which ABI version.
 * The tender refuses guests whose target is not spt or whose version it
 * does not speak.
 */
        .section .note.solo5.abi, "a", @note
        .p2align 2
        .long   6                       /* n_namesz: "Solo5" + NUL */
        .long   16                      /* n_descsz */
        .long   NT_SOLO5_ABI1           /* n_type */
        .ascii  "Solo5\0\0\0"           /* name, padded to 8 bytes */
        .long   SOLO5_ABI_TARGET_SPT    /* abi_target */
        .long   SOLO5_SPT_ABI_VERSION   /* abi_version */
        .long   0                       /* reserved0 */
        .long   0                       /* reserved1 */

/*
 * PT_INTERP names an interpreter that does not exist, so that exec'ing the
 * guest directly on Linux fails (ENOENT) instead of jumping into it with a
 * normal process layout. 20 bytes of string, padded to 24.
 */
        .section .interp, "a", @progbits
        .ascii  "/nonexistent/solo5/\0"
        .byte   0, 0, 0, 0

/* No executable stack is wanted, and ld should not warn about it. */
        .section .note.GNU-stack, "", @progbits
