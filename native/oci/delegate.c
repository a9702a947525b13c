/*
 * Containers that are not unikernels (the pod's pause container, sidecars)
 * are runc's, unchanged: the same command line, except --root, which is the
 * container's own ROOT/ID/runc, so runc's state never mixes with tendril's.
 * The runc is --delegate=PATH, else `runc` on PATH (never this program
 * itself under that name); the one that created a container is recorded
 * in its state and used for all its later commands.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci.h"

static bool is_self(const char *path)
{
    char a[PATH_MAX], b[PATH_MAX];
    return realpath(path, a) && realpath("/proc/self/exe", b) && strcmp(a, b) == 0;
}

const char *find_runc(const struct globals *g)
{
    static char found[PATH_MAX];
    if (g->delegate)
        return access(g->delegate, X_OK) == 0 ? g->delegate : NULL;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(found, sizeof found, "%.*s/runc", (int)n, path) < sizeof found &&
            access(found, X_OK) == 0 && !is_self(found))
            return found;
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* runc [its global options] --root RUNC_ROOT COMMAND...; argv starts at the command. */
int run_runc(const char *runc, const struct globals *g, const char *runc_root, int argc, char **argv, bool wait)
{
    char *args[64 + argc];
    int n = 0;
    args[n++] = (char *)runc;
    for (int i = 0; i < g->npass; i++)
        args[n++] = (char *)g->pass[i];
    args[n++] = "--root";
    args[n++] = (char *)runc_root;
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    if (!wait) {
        execv(runc, args);
        fail("cannot run %s: %s", runc, strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        execv(runc, args);
        dprintf(2, "%s: cannot run %s: %s\n", PROG, runc, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            fail("waitpid: %s", strerror(errno));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
