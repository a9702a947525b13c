/*
 * Isolation (--isolate): the jailer, defence in depth beneath the seccomp
 * filter. Should a kernel bug ever let a guest past its filter, it finds
 * itself an id that owns nothing with no capability at all (bounding set
 * included), alone in new pid, mount, network, ipc, uts and cgroup
 * namespaces, with an empty read-only root, denied every filesystem access
 * by Landlock, and held by a cgroup of its own (memory, pids, cpu). The
 * supervisor decides which of these the host provides and makes and limits
 * the cgroups (supervisor/isolate/); this file only applies the plan's
 * plan_isolate section and ISOLATE_SECTION_CGROUPS list.
 *
 * Process shape. unshare(CLONE_NEWPID) moves only the caller's future
 * children, and the first of them becomes the namespace's init, which gets
 * no signal it has no handler for: not even SIGTERM from outside, only
 * SIGKILL and SIGSTOP from an ancestor namespace (the kernel's
 * SIGNAL_UNKILLABLE). A guest has no handlers, so it must not be that init.
 * So the process that runs the stub (here "the parent") stays outside:
 * it unshares the pid namespace for its children, forks a tiny init (pid 1)
 * and then the guest (pid 2), which is the parent's own child. The parent
 * therefore waits for the guest directly and gets its exact status, as the
 * monitor always did: in monitor mode the parent is the monitor (attached
 * before the guest drops its privileges), in exec mode it is a waiter that
 * passes signals on to the guest and ends the way the guest ended, so the
 * shell that started `tendril run` sees the guest's status on the pid it
 * knows.
 *
 * The init also makes and holds the other namespaces (mount with the empty
 * root, network, ipc, uts, cgroup), and the guest joins them with one
 * setns() on a pidfd of the init: so the guest's own exit tears nothing
 * down (namespace teardown waits for RCU grace periods, milliseconds on a
 * busy host), and a pool stub can make them before a launch is asked for
 * (isolate_prepare). The parent joins the guest's cgroups before forking
 * it (join_cgroups). When the guest has ended the parent reads whether the
 * cgroup's OOM killer ended it, leaves and removes the guest's cgroups (in
 * exec mode nobody else could: Node is gone; serve removes them itself) and
 * kills the init without waiting for it: the namespaces go with it, off the
 * guest's path, and whoever adopts it (a subreaper, or pid 1) reaps it.
 *
 * Included by stub.c (one translation unit, no libc), after monitor.c.
 */

_Static_assert(ISOLATE_SECTION_JAIL >= PLAN_SECTION_ISOLATE_FIRST && ISOLATE_SECTION_CGROUP_LIMITS < PLAN_SECTION_LIMIT,
               "isolation sections stay in their range");

#define NR_chdir 80
#define NR_mkdir 83
#define NR_fchdir 81
#define NR_rmdir 84
#define NR_setgroups 116
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_capset 126
#define NR_rt_sigtimedwait 128
#define NR_pivot_root 155
#define NR_mount 165
#define NR_umount2 166
#define NR_unshare 272
#define NR_move_mount 429
#define NR_fsopen 430
#define NR_fsconfig 431
#define NR_fsmount 432
#define NR_landlock_create_ruleset 444
#define NR_landlock_restrict_self 446
#define NR_setns 308

#define CLONE_NEWNS 0x00020000
#define CLONE_NEWCGROUP 0x02000000
#define CLONE_NEWUTS 0x04000000
#define CLONE_NEWIPC 0x08000000
#define CLONE_NEWPID 0x20000000
#define CLONE_NEWNET 0x40000000
#define MS_REC 0x4000
#define MS_PRIVATE 0x40000
#define MNT_DETACH 2
#define FSOPEN_CLOEXEC 1
#define FSCONFIG_SET_STRING 1
#define FSCONFIG_CMD_CREATE 6
#define FSMOUNT_CLOEXEC 1
#define MOUNT_ATTR_RDONLY 0x1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#define MOUNT_ATTR_NOEXEC 0x8
#define MOVE_MOUNT_F_EMPTY_PATH 0x4
#define AT_FDCWD -100
#define O_WRONLY 1
#define O_DIRECTORY 0200000
#define O_CLOEXEC 02000000
#define PR_CAPBSET_DROP 24
#define PR_SET_SECUREBITS 28
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define RLIMIT_NPROC 6
#define WNOHANG 1
#define SIGCHLD 17
#define ESRCH 3
#define ECHILD 10

/* Securebits, locked: no root magic for a later uid 0, no keeping
 * capabilities across a uid change, no raising ambient capabilities. */
#define SECURE_JAIL ((1 << 0) | (1 << 1) | (1 << 5) | (1 << 6) | (1 << 7))

static struct plan_isolate iso;
/* A pool stub that made its jail's namespaces before its plan came (isolate_prepare). */
static int prepared;
static const char *cgroup_dirs[ISOLATE_MAX_CGROUPS];
static u32 ncgroups;
/* A prepared stub's own cgroups (CGROUP-PARENT/tendril-PID-pool). */
static char own_dirs[ISOLATE_MAX_CGROUPS][ISOLATE_MAX_PATH];
static long init_pid = -1;

static const char *cgroup_file(char *buf, const char *dir, const char *name);
static void apply_limits(void);

static void check_jail(void)
{
    if (iso.flags & ~(u32)(ISOLATE_F_NEWPID | ISOLATE_F_EMPTY_ROOT | ISOLATE_F_NEWNET | ISOLATE_F_NEWIPC | ISOLATE_F_NEWUTS |
                           ISOLATE_F_NEWCGROUP | ISOLATE_F_CREDS | ISOLATE_F_LANDLOCK | ISOLATE_F_KEEP_CGROUPS) || iso.reserved)
        malformed("unknown isolation flags");
}

static void isolate_read(void)
{
    const u8 *jail = sections[ISOLATE_SECTION_JAIL].data;
    const u8 *cg = sections[ISOLATE_SECTION_CGROUPS].data;
    if (!(hdr.flags & PLAN_F_ISOLATE)) {
        if (jail || cg)
            malformed("isolation sections without the isolate flag");
        if (prepared)
            malformed("a plan without isolation for a stub that made its jail ahead of it");
        return;
    }
    if (!jail || sections[ISOLATE_SECTION_JAIL].len != sizeof iso)
        malformed("the isolate flag without its jail section");
    u32 made = iso.flags & ISOLATE_NAMESPACE_FLAGS;
    for (u32 i = 0; i < sizeof iso; i++)
        ((u8 *)&iso)[i] = jail[i];
    check_jail();
    if (prepared && (iso.flags & ISOLATE_NAMESPACE_FLAGS) != made)
        malformed("the plan asks for other namespaces than this stub made ahead of it");
    if (hdr.flags & PLAN_F_STOP_AT_ENTRY)
        malformed("--gdb and isolation together (the isolated guest has no /proc to wait on)");
    if (cg && prepared)
        malformed("a cgroup list for a stub that made its own cgroups");
    if (cg) {
        u32 len = sections[ISOLATE_SECTION_CGROUPS].len, start = 0;
        if (len == 0 || cg[len - 1] != 0)
            malformed("cgroup list not NUL-terminated");
        for (u32 i = 0; i < len; i++) {
            if (cg[i])
                continue;
            if (ncgroups == ISOLATE_MAX_CGROUPS || i == start || cg[start] != '/' || i - start >= ISOLATE_MAX_PATH - 16)
                malformed("cgroup directory list");
            cgroup_dirs[ncgroups++] = (const char *)cg + start;
            start = i + 1;
        }
    }
    isolated = 1;
    apply_limits();
}

/* dir + "/" + name into buf (ISOLATE_MAX_PATH bytes; isolate_read bounds dir). */
static const char *cgroup_file(char *buf, const char *dir, const char *name)
{
    u32 n = 0;
    while (*dir)
        buf[n++] = *dir++;
    buf[n++] = '/';
    while (*name)
        buf[n++] = *name++;
    buf[n] = 0;
    return buf;
}

/* Writes value into path: the kernel's answer (bytes written, or -errno). */
static long write_file(const char *path, const char *value)
{
    long fd = syscall6(NR_open, (long)path, O_WRONLY | O_CLOEXEC, 0, 0, 0, 0);
    if (fd < 0)
        return fd;
    long r = sys_write((int)fd, value, str_len(value));
    sys_close((int)fd);
    return r;
}

/*
 * The parent, into the guest's cgroups, before forking the guest: the guest
 * is born in them, as moving a running process into a cgroup waits for an
 * RCU grace period (cgroup v1), during which every fork and exit on the
 * machine waits too. So pids.max is 2, the guest and its parent. The
 * memory limit's OOM killer takes the biggest task, always the guest (its
 * parent holds ~100 KiB), so no memory.oom.group, which would take both.
 */
static void join_cgroups(void)
{
    char path[ISOLATE_MAX_PATH];
    for (u32 i = 0; i < ncgroups; i++) {
        long r = write_file(cgroup_file(path, cgroup_dirs[i], "cgroup.procs"), "0");
        if (r != 1)
            die_errno("writing cgroup.procs", "joining the guest's cgroup", r < 0 ? r : -EINVAL);
    }
}

/* SECTION_CGROUP_LIMITS: each FILE\0VALUE\0 into every cgroup directory of the guest that has FILE. */
static void apply_limits(void)
{
    const u8 *d = sections[ISOLATE_SECTION_CGROUP_LIMITS].data;
    u32 len = sections[ISOLATE_SECTION_CGROUP_LIMITS].len;
    if (!d)
        return;
    if (len == 0 || d[len - 1] != 0)
        malformed("cgroup limits not NUL-terminated");
    char path[ISOLATE_MAX_PATH];
    for (u32 o = 0; o < len;) {
        const char *file = (const char *)d + o;
        u32 flen = (u32)str_len(file);
        if (flen == 0 || flen > 64 || o + flen + 1 >= len)
            malformed("cgroup limits");
        const char *value = file + flen + 1;
        u32 vlen = (u32)str_len(value);
        if (vlen == 0 || vlen > 64)
            malformed("cgroup limits");
        for (u32 k = 0; k < flen; k++)
            if (file[k] == '/' || (file[k] == '.' && k == 0))
                malformed("cgroup limit names a file outside the cgroup");
        for (u32 i = 0; i < ncgroups; i++) {
            long r = write_file(cgroup_file(path, cgroup_dirs[i], file), value);
            if (r < 0 && r != -2 /* ENOENT: not this controller's directory */)
                die_errno(file, "setting a limit of the guest's cgroup", r);
        }
        o += flen + 1 + vlen + 1;
    }
}

/*
 * The parent, before it forks the init and the guest: securebits locked, no
 * ambient capability, an empty bounding set, all inherited by both. The
 * parent itself keeps its effective capabilities (the bounding set only
 * bounds what an exec could gain, and it never execs): it still traces,
 * signals and removes cgroups. Done here once, not in each guest: every
 * PR_CAPBSET_DROP commits new credentials, ~2 us each, 41 of them.
 */
static void drop_bounding_set(void)
{
    long r;
    if ((r = sys_prctl(PR_SET_SECUREBITS, SECURE_JAIL, 0, 0, 0)) < 0)
        die_errno("prctl(PR_SET_SECUREBITS)", "isolating the guest", r);
    sys_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    /* Every capability the kernel knows: it answers EINVAL past the last. */
    for (long cap = 0; cap < 64; cap++) {
        r = sys_prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
        if (r == -EINVAL)
            break;
        if (r < 0)
            die_errno("prctl(PR_CAPBSET_DROP)", "isolating the guest", r);
    }
}

/* The guest and the init, with the bounding set already empty: permitted, effective, inheritable gone, under `uid`:`gid` with no groups. */
static void drop_privileges(void)
{
    long r;
    if ((r = syscall6(NR_setgroups, 0, 0, 0, 0, 0, 0)) < 0)
        die_errno("setgroups", "isolating the guest", r);
    if ((r = syscall6(NR_setresgid, iso.gid, iso.gid, iso.gid, 0, 0, 0)) < 0)
        die_errno("setresgid", "isolating the guest", r);
    if ((r = syscall6(NR_setresuid, iso.uid, iso.uid, iso.uid, 0, 0, 0)) < 0)
        die_errno("setresuid", "isolating the guest", r);
    /* The uid change cleared permitted and effective; inheritable survives it. */
    struct { u32 version; int pid; } caphdr = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
    u32 capdata[6] = { 0 };
    if ((r = syscall6(NR_capset, (long)&caphdr, (long)capdata, 0, 0, 0, 0)) < 0)
        die_errno("capset", "isolating the guest", r);
    /* No process of this id may fork, whatever the cgroup allows. */
    static const u64 none[2] = { 0, 0 };
    if ((r = sys_setrlimit(RLIMIT_NPROC, none)) < 0)
        die_errno("setrlimit", "RLIMIT_NPROC", r);
}

/* A domain that handles every right of this kernel's ABI and grants none. */
static void landlock_deny_all(void)
{
    /* Without CAP_SYS_ADMIN (tendril not root) Landlock needs no_new_privs first; the stub sets it anyway. */
    sys_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    struct { u64 fs, net, scoped; } attr = { iso.landlock_fs, iso.landlock_net, iso.landlock_scoped };
    long rs = syscall6(NR_landlock_create_ruleset, (long)&attr, sizeof attr, 0, 0, 0, 0);
    if (rs < 0)
        die_errno("landlock_create_ruleset", "isolating the guest", rs);
    long r = syscall6(NR_landlock_restrict_self, rs, 0, 0, 0, 0, 0);
    sys_close((int)rs);
    if (r < 0)
        die_errno("landlock_restrict_self", "isolating the guest", r);
}

/*
 * The root becomes an empty tmpfs, read-only, mode 0, and the old root is
 * unmounted. No directory of the host is needed as a mount point: the
 * tmpfs is made detached (fsmount) and put on top of "/", and
 * pivot_root(".", ".") from inside it stacks the old root above it, where
 * umount2(MNT_DETACH) takes it away.
 */
static void empty_root(void)
{
    long r = syscall6(NR_mount, 0, (long)"/", 0, MS_REC | MS_PRIVATE, 0, 0);
    if (r < 0)
        die_errno("mount(MS_PRIVATE)", "making the guest's mounts private", r);
    long fs = syscall6(NR_fsopen, (long)"tmpfs", FSOPEN_CLOEXEC, 0, 0, 0, 0);
    if (fs < 0)
        die_errno("fsopen(tmpfs)", "making the guest's empty root", fs);
    if ((r = syscall6(NR_fsconfig, fs, FSCONFIG_SET_STRING, (long)"size", (long)"4k", 0, 0)) < 0 ||
        (r = syscall6(NR_fsconfig, fs, FSCONFIG_SET_STRING, (long)"mode", (long)"0", 0, 0)) < 0 ||
        (r = syscall6(NR_fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0, 0)) < 0)
        die_errno("fsconfig", "making the guest's empty root", r);
    long m = syscall6(NR_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 0, 0, 0);
    sys_close((int)fs);
    if (m < 0)
        die_errno("fsmount", "making the guest's empty root", m);
    if ((r = syscall6(NR_move_mount, m, (long)"", AT_FDCWD, (long)"/", MOVE_MOUNT_F_EMPTY_PATH, 0)) < 0)
        die_errno("move_mount", "making the guest's empty root", r);
    if ((r = syscall6(NR_fchdir, m, 0, 0, 0, 0, 0)) < 0)
        die_errno("fchdir", "entering the guest's empty root", r);
    sys_close((int)m);
    if ((r = syscall6(NR_pivot_root, (long)".", (long)".", 0, 0, 0, 0)) < 0)
        die_errno("pivot_root", "entering the guest's empty root", r);
    if ((r = syscall6(NR_umount2, (long)".", MNT_DETACH, 0, 0, 0, 0)) < 0)
        die_errno("umount2", "unmounting the host's root", r);
    if ((r = syscall6(NR_chdir, (long)"/", 0, 0, 0, 0, 0)) < 0)
        die_errno("chdir", "entering the guest's empty root", r);
}

/*
 * The namespaces the init makes and the guest joins (the pid namespace is
 * the init's by birth). The cgroup namespace too: rooted at the init's
 * cgroup, tendril's own, so the guest sees nothing of the tree above it and
 * only its own cgroup below.
 */
static long init_namespaces(void)
{
    return ((iso.flags & ISOLATE_F_EMPTY_ROOT) ? CLONE_NEWNS : 0) | ((iso.flags & ISOLATE_F_NEWNET) ? CLONE_NEWNET : 0) |
           ((iso.flags & ISOLATE_F_NEWIPC) ? CLONE_NEWIPC : 0) | ((iso.flags & ISOLATE_F_NEWUTS) ? CLONE_NEWUTS : 0) |
           ((iso.flags & ISOLATE_F_NEWCGROUP) ? CLONE_NEWCGROUP : 0);
}

/* The guest's handles on its init: a pidfd (to join its namespaces) and the pipe it says it is ready on. */
static int init_pidfd = -1;
static int init_ready = -1;

/*
 * The init: pid 1 of the guest's pid namespace, and the holder of its other
 * namespaces. It keeps nothing but stderr (for its own errors) and the
 * ready pipe, makes the namespaces and the empty root, drops to the
 * guest's id with no capabilities under the same Landlock domain, says it
 * is ready, then only reaps whatever is reparented to it (nothing: the
 * guest cannot fork) until the parent kills it. It blocks every signal: as
 * pid 1 it would get none it has no handler for anyway, and a blocked
 * SIGCHLD waits for sigtimedwait.
 */
__attribute__((noreturn)) static void init_main(int ready)
{
    static const u64 all = ~0ul;
    sys_rt_sigprocmask(SIG_SETMASK, &all, 0);
    int keep[] = { 2, ready };
    close_all_but(keep, 2);
    long ns = init_namespaces(), r;
    if (ns && (r = syscall6(NR_unshare, ns, 0, 0, 0, 0, 0)) < 0)
        die_errno("unshare", "making the guest's namespaces", r);
    if (iso.flags & ISOLATE_F_EMPTY_ROOT)
        empty_root();
    if (iso.flags & ISOLATE_F_LANDLOCK)
        landlock_deny_all();
    if (iso.flags & ISOLATE_F_CREDS)
        drop_privileges();
    /* After the uid change, which clears it. */
    sys_prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (!isolate_parent_alive())
        sys_exit_group(1);
    sys_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    sys_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    sys_write(ready, "R", 1);
    sys_close(ready);
    sys_close(2);
    static const u64 chld = 1ul << (SIGCHLD - 1);
    for (;;) {
        while (syscall6(NR_wait4, -1, 0, WNOHANG | WALL, 0, 0, 0) > 0)
            ;
        syscall6(NR_rt_sigtimedwait, (long)&chld, 0, 0, 8, 0, 0);
    }
}

/*
 * The parent, before forking the guest: a new pid namespace for its
 * children, and the init, which makes the other namespaces meanwhile (the
 * guest waits for it only when it needs them, after joining its cgroups).
 */
static void isolate_fork_init(void)
{
    if (prepared || !isolated)
        return;
    if (iso.flags & ISOLATE_F_CREDS)
        drop_bounding_set();
    if (!((iso.flags & ISOLATE_F_NEWPID) || init_namespaces())) {
        join_cgroups();
        return;
    }
    long r;
    if ((iso.flags & ISOLATE_F_NEWPID) && (r = syscall6(NR_unshare, CLONE_NEWPID, 0, 0, 0, 0, 0)) < 0)
        die_errno("unshare(CLONE_NEWPID)", "isolating the guest", r);
    int ready[2];
    if ((r = sys_pipe2(ready, O_CLOEXEC)) < 0)
        die_errno("pipe2", "starting the guest's init", r);
    long pid = syscall6(NR_fork, 0, 0, 0, 0, 0, 0);
    if (pid < 0)
        die_errno("fork", "starting the guest's init", pid);
    if (pid == 0)
        init_main(ready[1]);
    sys_close(ready[1]);
    init_pid = pid;
    init_ready = ready[0];
    long pfd = sys_pidfd_open(pid);
    if (pfd < 0) {
        sys_kill(pid, SIGKILL);
        die_errno("pidfd_open", "starting the guest's init", pfd);
    }
    init_pidfd = (int)pfd;
    /* After the init (which must not count against the guest's pids.max), before the guest. */
    join_cgroups();
}


/* In the guest after the fork: whether the parent that forked it is still there. */
static int isolate_parent_alive(void)
{
    /* Seen from inside its pid namespace, a parent outside it has pid 0. */
    if (isolated && (iso.flags & ISOLATE_F_NEWPID))
        return sys_getppid() == 0;
    return sys_getppid() == jail_parent;
}

/*
 * The guest, before its memory exists (so the memory cgroup is charged for
 * all of it): join the cgroups, unshare, empty root, Landlock, credentials.
 * Everything it still needs is an fd already open.
 */
static void isolate_guest(void)
{
    long r;
    if (init_pidfd >= 0) {
        char c = 0;
        do
            r = sys_read(init_ready, &c, 1);
        while (r == -EINTR);
        if (r != 1)
            die("isolating the guest", "its init could not make its namespaces (it said why above)");
        sys_close(init_ready);
        /* The init's mount (root and cwd become its empty root), network, ipc, uts and cgroup namespaces at once. */
        long ns = init_namespaces();
        if (ns && (r = syscall6(NR_setns, init_pidfd, ns, 0, 0, 0, 0)) < 0)
            die_errno("setns", "joining the guest's namespaces", r);
        sys_close(init_pidfd);
        init_pidfd = init_ready = -1;
    }
    if (iso.flags & ISOLATE_F_LANDLOCK)
        landlock_deny_all();
    if (iso.flags & ISOLATE_F_CREDS) {
        drop_privileges();
        /* The uid change cleared these: the guest is non-dumpable unless asked, and dies with its parent. */
        if (hdr.flags & PLAN_F_DUMPABLE)
            sys_prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        sys_prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (!isolate_parent_alive())
            sys_exit_group(1);
    }
}

/* "oom_kill N" from a memory cgroup's memory.events (v2) or memory.oom_control (v1); -1 if neither is there. */
static long cgroup_oom_kills(const char *dir)
{
    char path[ISOLATE_MAX_PATH];
    /* The space matters: v1's file starts with "oom_kill_disable". */
    long v = proc_status_value(cgroup_file(path, dir, "memory.events"), "oom_kill ");
    return v >= 0 ? v : proc_status_value(cgroup_file(path, dir, "memory.oom_control"), "oom_kill ");
}

/*
 * The parent, once the guest is reaped (wait status `status`): returns
 * REPORT_F_OOM if the guest's memory cgroup killed it, which only a SIGKILL
 * can be. The init is killed, not waited for (see the top).
 */
static u32 isolate_end(int status)
{
    if (init_pid > 0)
        sys_kill(init_pid, SIGKILL);
    init_pid = -1;
    u32 flags = 0;
    for (u32 i = 0; (status & 0x7f) == SIGKILL && i < ncgroups; i++)
        if (cgroup_oom_kills(cgroup_dirs[i]) > 0)
            flags |= REPORT_F_OOM;
    return flags;
}

/* The parent, last: the guest's cgroups go (empty now; rmdir is all a cgroup needs), unless the supervisor keeps them. */
static void isolate_remove_cgroups(void)
{
    if ((iso.flags & ISOLATE_F_KEEP_CGROUPS) || prepared)
        ncgroups = 0;
    char path[ISOLATE_MAX_PATH], procs[ISOLATE_MAX_PATH];
    for (u32 i = 0; i < ncgroups; i++) {
        /* Out of it first (into its parent): a cgroup with a process in it cannot go. */
        u32 n = 0, slash = 0;
        for (const char *c = cgroup_dirs[i]; *c; c++, n++) {
            path[n] = *c;
            if (*c == '/')
                slash = n;
        }
        path[slash ? slash : 1] = 0;
        write_file(cgroup_file(procs, path, "cgroup.procs"), "0");
        long r = syscall6(NR_rmdir, (long)cgroup_dirs[i], 0, 0, 0, 0, 0);
        if (r < 0 && r != -2 /* ENOENT */) {
            put_str("tendril: removing the guest's cgroup ");
            put_str(cgroup_dirs[i]);
            put_str(": ");
            put_str(errno_text(r));
            put_str("\n");
        }
    }
    ncgroups = 0;
}

/*
 * A pool stub of `tendril serve --isolate` (started as `tendril-stub
 * PLAN-FD JAIL`): the pid namespace and the init, which makes the other
 * namespaces and the empty root, while the stub still waits for its plan.
 * A launch then pays only for what belongs to the guest (its cgroups, its
 * cgroup namespace, Landlock, its ids), not for namespaces, which take
 * milliseconds to make on a busy host (RCU grace periods).
 */
static void isolate_prepare(const char *hex, char **parents, u32 nparents)
{
    u8 *out = (u8 *)&iso;
    u32 n = 0;
    for (; hex[n] && n < 2 * sizeof iso; n++) {
        char c = hex[n];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            die("usage: tendril-stub PLAN-FD [JAIL]", "JAIL is a plan_isolate in lowercase hex digits");
        out[n / 2] = (u8)((n & 1) ? (out[n / 2] | v) : (v << 4));
    }
    if (n != 2 * sizeof iso || hex[n])
        die("usage: tendril-stub PLAN-FD [JAIL]", "JAIL is a plan_isolate in lowercase hex digits");
    check_jail();
    if (nparents > ISOLATE_MAX_CGROUPS)
        die("usage: tendril-stub PLAN-FD [JAIL [CGROUP-PARENT...]]", "too many cgroup parents");
    /* Its own cgroups, named for its pid (unique while it lives; the supervisor removes them, or sweeps them once it is gone). */
    char digits[12];
    u32 nd = 0;
    for (long pid = sys_getpid(); pid; pid /= 10)
        digits[nd++] = (char)('0' + pid % 10);
    for (u32 i = 0; i < nparents; i++) {
        char *d = own_dirs[i];
        u32 n = 0;
        for (const char *c = parents[i]; *c; c++)
            if (n < ISOLATE_MAX_PATH - 40)
                d[n++] = *c;
        if (n == 0 || d[0] != '/' || n >= ISOLATE_MAX_PATH - 40)
            die("usage: tendril-stub PLAN-FD [JAIL [CGROUP-PARENT...]]", "a cgroup parent must be an absolute path");
        for (const char *c = "/tendril-"; *c; c++)
            d[n++] = *c;
        for (u32 k = nd; k > 0; k--)
            d[n++] = digits[k - 1];
        for (const char *c = "-pool"; *c; c++)
            d[n++] = *c;
        d[n] = 0;
        long r = syscall6(NR_mkdir, (long)d, 0755, 0, 0, 0, 0);
        if (r < 0)
            die_errno("mkdir", "making the stub's cgroup", r);
        cgroup_dirs[ncgroups++] = d;
        char path[ISOLATE_MAX_PATH];
        /* The guest and its parent; the init is outside. */
        r = write_file(cgroup_file(path, d, "pids.max"), "2");
        if (r < 0 && r != -2)
            die_errno("pids.max", "limiting the stub's cgroup", r);
    }
    isolated = 1;
    jail_parent = sys_getpid();
    isolate_fork_init();
    prepared = 1;
    /* The guest, with no /proc to read it from, resets what is ignored now (its parent's, and so its own). */
    ignored_signals = proc_status_mask("/proc/self/status", "SigIgn:");
    ignored_known = 1;
}

/*
 * Exec mode's waiter: every signal it can catch goes on to the guest, so
 * `kill PID` and the terminal's keys act on the guest as they would without
 * isolation. Stops go on too, and the waiter stops itself when (and only
 * when) the guest has stopped, so the shell sees a stopped job exactly
 * when an unisolated guest would have stopped (a SIGTSTP to an orphaned
 * process group, for one, stops nobody); a SIGCONT goes on. Not caught:
 * SIGKILL and SIGSTOP (impossible: the guest then dies with its parent, or
 * runs on while the waiter is stopped), SIGCHLD (the guest's news), and
 * the synchronous faults, which would loop if they were the waiter's own.
 */
static void waiter_signals(void)
{
    struct k_sigaction fwd = { (void *)forward_signal, SA_RESTORER | SA_RESTART, (void *)monitor_sigreturn, 0 };
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD || sig == 4 /* ILL */ || sig == 5 /* TRAP */ || sig == 7 /* BUS */ ||
            sig == 8 /* FPE */ || sig == 11 /* SEGV */ || sig == 31 /* SYS */)
            continue;
        sys_rt_sigaction(sig, &fwd, 0);
    }
}

#define WUNTRACED 2

__attribute__((noreturn)) static void waiter_loop(long child)
{
    int status = 0;
    for (;;) {
        long r = syscall6(NR_wait4, child, (long)&status, WALL | WUNTRACED, 0, 0, 0);
        if (r == -EINTR)
            continue;
        if (r != child)
            sys_exit_group(1);
        if ((status & 0xff) == 0x7f) {
            /* The guest stopped: so does its waiter, until a SIGCONT (which it passes on). */
            sys_kill(sys_getpid(), SIGSTOP);
            continue;
        }
        break;
    }
    isolate_end(status);
    isolate_remove_cgroups();
    mirror_status(status);
}

/*
 * Exec mode: the stub process forks the jailed guest and stays as its
 * waiter. Returns in the guest only.
 */
static void waiter_fork(void)
{
    jail_parent = sys_getpid();
    isolate_fork_init();
    long child = syscall6(NR_fork, 0, 0, 0, 0, 0, 0);
    if (child < 0)
        die_errno("fork", "starting the isolated guest", child);
    if (child == 0) {
        init_pid = -1;
        sys_prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (!isolate_parent_alive())
            sys_exit_group(1);
        return;
    }
    guest_pid = child;
    waiter_signals();
    int keep[] = { 0, 1, 2 };
    close_all_but(keep, sizeof keep / sizeof keep[0]);
    plan_fd = image_fd = start_fd = report_fd = -1;
    waiter_loop(child);
}
