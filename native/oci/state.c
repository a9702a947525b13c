/*
 * A container's directory (ROOT/ID) and its record (ROOT/ID/state), in the
 * format supervisor/oci/contract.ts defines: "KEY VALUE" lines. The record
 * is written whole to a temporary file and renamed into place, so a reader
 * never sees half of one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"

/* runc's rule for ids: no path separators, nothing that could leave the root. */
void check_id(const char *id)
{
    if (!id || !*id)
        fail("container id cannot be empty");
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_+.-", c)))
            fail("invalid container id '%s'; use letters, digits, _ + - and .", id);
    }
    if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0 || strlen(id) > 1024)
        fail("invalid container id '%s'; use letters, digits, _ + - and .", id);
}

void container_dir(char *out, size_t size, const char *root, const char *id)
{
    if ((size_t)snprintf(out, size, "%s/%s", root, id) >= size)
        fail("the state directory %s/%s is too long a path", root, id);
}

bool container_exists(const char *root, const char *id)
{
    char dir[4096];
    container_dir(dir, sizeof dir, root, id);
    return access(dir, F_OK) == 0;
}

static void set(char *field, size_t size, const char *value)
{
    snprintf(field, size, "%s", value);
}

bool state_load(const char *root, const char *id, struct state *st)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s/%s", root, id, STATE_FILE) >= sizeof path)
        return false;
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    memset(st, 0, sizeof *st);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        const char *k = line, *v = sp + 1;
#define FIELD(key, field) else if (strcmp(k, key) == 0) set(st->field, sizeof st->field, v)
        if (strcmp(k, KEY_PID) == 0)
            st->pid = (pid_t)atoi(v);
        else if (strcmp(k, KEY_GUEST_PID) == 0)
            st->guest_pid = (pid_t)atoi(v);
        else if (strcmp(k, KEY_ANNOTATIONS) == 0) {
            free(st->annotations);
            st->annotations = strdup(v);
        }
        FIELD(KEY_RUNTIME, runtime);
        FIELD(KEY_DELEGATE, delegate);
        FIELD(KEY_START_TIME, start_time);
        FIELD(KEY_BUNDLE, bundle);
        FIELD(KEY_ROOTFS, rootfs);
        FIELD(KEY_CREATED, created);
        FIELD(KEY_NETNS, netns);
        FIELD(KEY_POD_IFACE, pod_iface);
        FIELD(KEY_POD_ADDR, pod_addr);
        FIELD(KEY_POD_GATEWAY, pod_gateway);
        FIELD(KEY_POD_TAP, pod_tap);
        FIELD(KEY_GUEST_START_TIME, guest_start_time);
        FIELD(KEY_CGROUPS, cgroups);
#undef FIELD
    }
    free(line);
    fclose(f);
    if (!st->annotations)
        st->annotations = strdup("{}");
    return st->runtime[0] != '\0';
}

/* The record of a container handed to runc: who runs it, and which runc. */
void state_save_delegated(const char *root, const char *id, const char *delegate, const char *bundle)
{
    char dir[4096], tmp[4200], path[4200], created[64];
    container_dir(dir, sizeof dir, root, id);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, STATE_FILE);
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(created + n, sizeof created - n, ".%03ldZ", ts.tv_nsec / 1000000);
    if (strchr(bundle, '\n') || strchr(delegate, '\n'))
        fail("bundle %s: a path with a newline cannot be recorded", bundle);
    FILE *f = fopen(tmp, "we");
    if (!f)
        fail("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "%s %s\n%s %s\n%s %s\n%s %s\n", KEY_RUNTIME, RUNTIME_RUNC, KEY_DELEGATE, delegate, KEY_BUNDLE, bundle,
            KEY_CREATED, created);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        fail("cannot write %s: %s", path, strerror(errno));
}

static void remove_at(int parent, const char *name)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            remove_at(dirfd(d), e->d_name);
    }
    closedir(d);
    unlinkat(parent, name, AT_REMOVEDIR);
}

/* rm -rf PATH, without following symbolic links. */
void remove_tree(const char *path)
{
    remove_at(AT_FDCWD, path);
}
