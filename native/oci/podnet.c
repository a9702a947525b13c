/*
 * A guest that owned its pod's interface (supervisor/oci/podnet.ts) leaves
 * it as CNI made it, once the guest is gone: the redirect from the
 * interface to the guest's tap goes (with its ingress qdisc), and the IPv4
 * address and default route that create moved off the interface come
 * back, so the next container of the pod (a restart) and CNI's own
 * teardown find what they expect. The tap itself went with the guest (it
 * is not persistent: it lives as long as an fd holds it). Each step is
 * done in the pod's network namespace; a namespace or an interface that is
 * already gone (the pod is being torn down) leaves nothing to do, and a
 * step that fails is logged, not fatal: the container is gone either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci.h"

static const char *tool(const char *name, char *buf, size_t size)
{
    static const char *dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(buf, size, "%s/%s", dirs[i], name);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return name;
}

/* Runs the command quietly; its failure is logged with the command line. */
static void step(char *const argv[])
{
    char path[256];
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        execv(tool(argv[0], path, sizeof path), argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[512];
        size_t len = 0;
        for (int i = 0; argv[i] && len < sizeof msg; i++)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s", i ? " " : "", argv[i]);
        log_error(msg);
    }
}

void podnet_restore(const struct state *st)
{
    int ns = open(st->netns, O_RDONLY | O_CLOEXEC);
    if (ns < 0)
        return;
    int ok = setns(ns, CLONE_NEWNET);
    close(ns);
    if (ok != 0) {
        log_error("cannot enter the pod's network namespace to give its interface back");
        return;
    }
    char *iface = (char *)st->pod_iface;
    if (st->pod_tap[0] && if_nametoindex(st->pod_tap) != 0) {
        char *del[] = { "ip", "link", "del", (char *)st->pod_tap, NULL };
        step(del);
    }
    if (if_nametoindex(iface) == 0)
        return;
    char *qdisc[] = { "tc", "qdisc", "del", "dev", iface, "ingress", NULL };
    step(qdisc);
    if (st->pod_addr[0]) {
        char *addr[] = { "ip", "-4", "addr", "add", (char *)st->pod_addr, "brd", "+", "dev", iface, NULL };
        step(addr);
    }
    if (st->pod_gateway[0]) {
        char *route[] = { "ip", "-4", "route", "add", "default", "via", (char *)st->pod_gateway, "dev", iface, NULL };
        step(route);
    }
    log_info("gave the pod's interface back");
}
