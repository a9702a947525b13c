/*
 * Which runtime a bundle is for. A unikernel is an ELF whose PT_NOTE
 * segment opens with a Solo5 ABI note (abi.md §5: the reference reads the
 * first note of each note segment only, so the loader does too); tendril
 * takes those, whatever target they were built for, so that a guest for
 * the wrong target gets tendril's error and not runc's. Everything else
 * (the pod's pause container, a sidecar, a program that is not there) goes
 * to runc. process.args[0] is looked up as the container would see it:
 * inside the rootfs, with absolute symbolic links resolved against the
 * rootfs (openat2 RESOLVE_IN_ROOT), never on the host.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "oci.h"

#define CONFIG_MAX (16 << 20)

static char *read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && st.st_size < CONFIG_MAX && (buf = malloc((size_t)st.st_size + 1))) {
        ssize_t n = read(fd, buf, (size_t)st.st_size);
        if (n < 0) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    close(fd);
    return buf;
}

static bool has_solo5_note(int fd, char *why, size_t why_size)
{
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        snprintf(why, why_size, "not an ELF file");
        return false;
    }
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_phentsize != sizeof(Elf64_Phdr)) {
        snprintf(why, why_size, "not a 64-bit little-endian ELF");
        return false;
    }
    for (unsigned i = 0; i < eh.e_phnum && i < 256; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph)
            break;
        if (ph.p_type != PT_NOTE || ph.p_filesz < sizeof(Elf64_Nhdr) + 8)
            continue;
        struct { Elf64_Nhdr h; char name[8]; } note;
        if (pread(fd, &note, sizeof note, (off_t)ph.p_offset) != (ssize_t)sizeof note)
            continue;
        if (note.h.n_namesz == sizeof SOLO5_NOTE_NAME && memcmp(note.name, SOLO5_NOTE_NAME, sizeof SOLO5_NOTE_NAME) == 0 &&
            note.h.n_type == SOLO5_ABI_NOTE_TYPE)
            return true;
    }
    snprintf(why, why_size, "an ELF without a Solo5 ABI note");
    return false;
}

bool bundle_is_unikernel(const char *bundle, char *why, size_t why_size)
{
    char path[4096], rootfs[8200], arg0[4096];
    snprintf(why, why_size, "unknown");
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", bundle) >= sizeof path)
        return true; /* let create's full check say what is wrong */
    char *config = read_file(path);
    if (!config) {
        snprintf(why, why_size, "cannot read %s", path);
        return true;
    }
    const char *root = json_member(config, "root");
    const char *proc = json_member(config, "process");
    const char *args = proc ? json_member(proc, "args") : NULL;
    bool ok = root && json_string(json_member(root, "path"), path, sizeof path) && args &&
              json_string(json_index(args, 0), arg0, sizeof arg0);
    free(config);
    if (!ok) {
        snprintf(why, why_size, "config.json has no root.path or process.args[0]");
        return true;
    }
    if (path[0] == '/')
        snprintf(rootfs, sizeof rootfs, "%s", path);
    else
        snprintf(rootfs, sizeof rootfs, "%s/%s", bundle, path);
    int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        snprintf(why, why_size, "the rootfs %s cannot be opened", rootfs);
        return true;
    }
    /* O_PATH first: a FIFO or a device node in the image is never opened for real (an open could block or act). */
    struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    int pathfd = (int)syscall(SYS_openat2, rootfd, arg0, &how, sizeof how);
    int err = errno;
    close(rootfd);
    if (pathfd < 0) {
        snprintf(why, why_size, "process.args[0] %s is not a file in the rootfs (%s)", arg0, strerror(err));
        return false;
    }
    struct stat st;
    if (fstat(pathfd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(pathfd);
        snprintf(why, why_size, "process.args[0] %s is not a regular file", arg0);
        return false;
    }
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", pathfd);
    int fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    close(pathfd);
    if (fd < 0) {
        snprintf(why, why_size, "process.args[0] %s cannot be read (%s)", arg0, strerror(errno));
        return false;
    }
    bool uk = has_solo5_note(fd, why, why_size);
    if (!uk) {
        char detail[128];
        snprintf(detail, sizeof detail, "%s", why);
        snprintf(why, why_size, "process.args[0] %s is %s", arg0, detail);
    }
    close(fd);
    return uk;
}
