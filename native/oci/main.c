/*
 * tendril-oci: runc's command line, as containerd's shim (io.containerd.
 * runc.v2) drives it. Global options come before the command, the
 * command's options before its operands:
 *
 *   tendril-oci [--root DIR] [--log FILE] [--log-format json|text]
 *               [--delegate=RUNC] [--systemd-cgroup] COMMAND [OPTIONS] ID ...
 *
 * create reads config.json: a unikernel (process.args[0] in the rootfs is a
 * Solo5 ELF) is created by Node (dist/bundle/tendril-oci-create.cjs, one
 * start), anything else by runc. Every later command goes to whichever
 * created the container, as its state records; the unikernels' commands
 * are run here (verbs.c), with no JavaScript at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci.h"

#ifndef TENDRIL_NODE
#define TENDRIL_NODE "node"
#endif

static const char USAGE[] =
    "usage: " PROG " [GLOBAL OPTIONS] COMMAND [OPTIONS] ID\n"
    "An OCI runtime (runc's command line) whose containers are Solo5 unikernels, each run\n"
    "by tendril as a seccomp-sandboxed process; any other container (a pod's pause\n"
    "container, a sidecar) is handed to runc. See docs/containerd.md and docs/kubernetes.md.\n"
    "\n"
    "Commands:\n"
    "  create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] ID\n"
    "  start ID          run the created container's guest\n"
    "  state ID          print the container's state (JSON)\n"
    "  kill [--all] ID [SIGNAL]\n"
    "  pause ID | resume ID\n"
    "  ps [--format json|table] ID\n"
    "  delete [--force] ID\n"
    "  features          print the supported features (JSON)\n"
    "  exec, update, events, checkpoint: runc's, for containers runc runs\n"
    "\n"
    "Global options:\n"
    "  --root DIR        state directory (default " DEFAULT_ROOT ")\n"
    "  --log FILE        log every command and error to FILE\n"
    "  --log-format F    json or text (default text)\n"
    "  --delegate=RUNC   the runc for containers that are not unikernels (default: runc on PATH)\n"
    "  --systemd-cgroup, --debug, --criu PATH, --rootless V   passed to runc, otherwise ignored\n"
    "  -v, --version     print the version\n";

/* What a command's options are: the ones taking a value, and the flags. NULL-separated lists of names without "--". */
struct command {
    const char *name;
    const char *values;  /* space-separated */
    const char *flags;
    /* Why tendril refuses it for a unikernel container (NULL: tendril runs it). */
    const char *refusal;
};

static const struct command COMMANDS[] = {
    { "create", "bundle b pid-file console-socket preserve-fds", "no-pivot no-new-keyring", NULL },
    { "start", "", "", NULL },
    { "state", "", "", NULL },
    { "kill", "", "all a", NULL },
    { "pause", "", "", NULL },
    { "resume", "", "", NULL },
    { "ps", "format f", "", NULL },
    { "delete", "", "force f", NULL },
    { "exec", "console-socket cwd env e user u additional-gids g process p pid-file process-label apparmor cap c preserve-fds cgroup",
      "tty t detach d no-new-privs ignore-paused", "a unikernel is one program: there is nothing to exec into" },
    { "update", "resources r blkio-weight cpu-period cpu-quota cpu-share cpu-rt-period cpu-rt-runtime cpuset-cpus cpuset-mems "
      "memory memory-reservation memory-swap pids-limit l3-cache-schema mem-bw-schema", "",
      "tendril creates no cgroups, so there are no resources to update" },
    { "events", "interval", "stats", "no cgroup statistics: tendril creates no cgroups" },
    { "checkpoint", "image-path work-path parent-path status-fd page-server manage-cgroups-mode empty-ns",
      "leave-running tcp-established ext-unix-sk shell-job lazy-pages file-locks pre-dump auto-dedup",
      "checkpointing a guest is not supported" },
};

static const struct { const char *name, *why; } UNSUPPORTED[] = {
    { "run", "use create, then start" },
    { "restore", "restoring a checkpoint is not supported" },
    { "spec", "write config.json yourself (or let containerd do it)" },
    { "list", "the state of each container is under --root; use state ID" },
};

static bool in_list(const char *list, const char *name, size_t len)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, " ");
        if (n == len && strncmp(p, name, len) == 0)
            return true;
        p += n + (p[n] == ' ');
    }
    return false;
}

/* One parsed command: its options (name → value, "" for flags) and operands. */
struct parsed {
    const struct command *cmd;
    const char *opt_name[32];
    const char *opt_value[32];
    int nopts;
    char *operands[8];
    int noperands;
};

static const char *opt(const struct parsed *p, const char *a, const char *b)
{
    for (int i = 0; i < p->nopts; i++) {
        if (strcmp(p->opt_name[i], a) == 0 || (b && strcmp(p->opt_name[i], b) == 0))
            return p->opt_value[i];
    }
    return NULL;
}

static void parse_command(const struct command *cmd, int argc, char **argv, struct parsed *p)
{
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    for (int i = 0; i < argc; i++) {
        char *w = argv[i];
        if (p->noperands > 0 || w[0] != '-' || strcmp(w, "-") == 0) {
            if (p->noperands < 8)
                p->operands[p->noperands++] = w;
            continue;
        }
        if (strcmp(w, "--") == 0) {
            for (i++; i < argc && p->noperands < 8; i++)
                p->operands[p->noperands++] = argv[i];
            break;
        }
        const char *name = w + (w[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (p->nopts >= 32)
            fail("%s: too many options", cmd->name);
        char *copy = strndup(name, len);
        if (in_list(cmd->values, name, len)) {
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v)
                fail("option --%s needs a value", copy);
            p->opt_name[p->nopts] = copy;
            p->opt_value[p->nopts++] = v;
        } else if (in_list(cmd->flags, name, len) && !eq) {
            p->opt_name[p->nopts] = copy;
            p->opt_value[p->nopts++] = "";
        } else {
            fail("%s: unknown option %s; see `%s --help`", cmd->name, w, PROG);
        }
    }
}

static const char *one_id(const struct parsed *p, int max)
{
    if (p->noperands < 1 || p->noperands > max)
        fail("%s: expected a container ID%s", p->cmd->name, max > 1 ? " and a signal" : "");
    check_id(p->operands[0]);
    return p->operands[0];
}

static int parse_globals(int argc, char **argv, struct globals *g)
{
    int i = 1;
    g->root = DEFAULT_ROOT;
    for (; i < argc && argv[i][0] == '-'; i++) {
        char *w = argv[i];
        if (g->npass > 12)
            fail("too many global options");
        char *eq = strchr(w, '=');
        size_t len = eq ? (size_t)(eq - w) : strlen(w);
#define IS(s) (len == strlen(s) && strncmp(w, s, len) == 0)
#define VALUE() (eq ? eq + 1 : (i + 1 < argc ? argv[++i] : (fail("option %.*s needs a value", (int)len, w), "")))
        if (IS("--root")) {
            g->root = VALUE();
        } else if (IS("--log")) {
            g->log = VALUE();
            g->pass[g->npass++] = "--log";
            g->pass[g->npass++] = g->log;
        } else if (IS("--log-format")) {
            const char *f = VALUE();
            if (strcmp(f, "json") && strcmp(f, "text"))
                fail("--log-format %s: must be json or text", f);
            g->log_json = strcmp(f, "json") == 0;
            g->pass[g->npass++] = "--log-format";
            g->pass[g->npass++] = f;
        } else if (IS("--delegate")) {
            g->delegate = VALUE();
        } else if (IS("--systemd-cgroup") || IS("--debug")) {
            /* tendril creates no cgroups; runc gets them. */
            g->pass[g->npass++] = w;
        } else if (IS("--criu") || IS("--rootless")) {
            g->pass[g->npass++] = strndup(w, len);
            g->pass[g->npass++] = VALUE();
        } else if (IS("-v") || IS("--version")) {
            printf("%s version %s\nspec: %s\n", PROG, TENDRIL_VERSION, OCI_VERSION);
            exit(0);
        } else if (IS("-h") || IS("--help")) {
            fputs(USAGE, stdout);
            exit(0);
        } else {
            fail("unknown global option %.*s; see `%s --help`", (int)len, w, PROG);
        }
#undef IS
#undef VALUE
    }
    return i;
}

static void runc_root(char *out, size_t size, const char *root, const char *id)
{
    if ((size_t)snprintf(out, size, "%s/%s/%s", root, id, DELEGATE_ROOT) >= size)
        fail("the state directory of %s is too long a path", id);
}

/* The repository this binary belongs to (it lives in ROOT/native/build). */
static void repo_root(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0)
        fail("cannot find this program's own path: %s", strerror(errno));
    exe[n] = '\0';
    snprintf(out, size, "%s", dirname(dirname(dirname(exe))));
}

/*
 * A unikernel's create: Node runs supervisor/oci/create-main.ts (bundled
 * with all it loads into dist/bundle/tendril-oci-create.cjs), which
 * writes the state and leaves the guest loaded and waiting. Its one-line
 * error comes back on a pipe (fd 3) and is logged here, the one writer of
 * the log. NODE_EXTRA_CA_CERTS costs Node's start ~65 ms and tendril uses
 * no TLS.
 */
static int create_unikernel(const struct globals *g, const char *id, const char *bundle, const struct parsed *p)
{
    char repo[PATH_MAX], script[PATH_MAX + 64];
    repo_root(repo, sizeof repo);
    snprintf(script, sizeof script, "%s/dist/bundle/tendril-oci-create.cjs", repo);
    if (access(script, R_OK) != 0)
        fail("cannot create a unikernel container: %s is missing; build tendril first (npm install, or npm run build in %s)", script, repo);
    const char *node = getenv("TENDRIL_NODE");
    if (!node || !*node)
        node = TENDRIL_NODE;
    char root_arg[PATH_MAX + 16], bundle_arg[PATH_MAX + 16], pid_arg[PATH_MAX + 16], console_arg[PATH_MAX + 32];
    snprintf(root_arg, sizeof root_arg, "--root=%s", g->root);
    snprintf(bundle_arg, sizeof bundle_arg, "--bundle=%s", bundle);
    const char *pid_file = opt(p, "pid-file", NULL);
    const char *console = opt(p, "console-socket", NULL);
    char *args[16];
    int n = 0;
    args[n++] = (char *)node;
    args[n++] = script;
    args[n++] = root_arg;
    args[n++] = bundle_arg;
    if (pid_file) {
        snprintf(pid_arg, sizeof pid_arg, "--pid-file=%s", pid_file);
        args[n++] = pid_arg;
    }
    if (console) {
        snprintf(console_arg, sizeof console_arg, "--console-socket=%s", console);
        args[n++] = console_arg;
    }
    args[n++] = (char *)id;
    args[n] = NULL;

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0)
        fail("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(errpipe[0]);
        /* dup2 onto itself would keep close-on-exec: clear it then. */
        if (errpipe[1] == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(errpipe[1], 3) < 0)
            _exit(127);
        unsetenv("NODE_EXTRA_CA_CERTS");
        execvp(node, args);
        dprintf(3, "cannot run Node (%s) for the unikernel's create: %s; set TENDRIL_NODE to its path\n", node, strerror(errno));
        _exit(127);
    }
    close(errpipe[1]);
    char msg[8192];
    size_t len = 0;
    ssize_t r;
    while ((r = read(errpipe[0], msg + len, sizeof msg - 1 - len)) > 0 || (r < 0 && errno == EINTR)) {
        if (r > 0)
            len += (size_t)r;
        if (len >= sizeof msg - 1)
            break;
    }
    close(errpipe[0]);
    msg[len] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        struct state st;
        if (!state_load(g->root, id, &st))
            fail("the unikernel's create (Node) succeeded but left no state for %s", id);
        snprintf(msg, sizeof msg, "created: the guest is pid %d, waiting to start", (int)st.pid);
        log_info(msg);
        return 0;
    }
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    if (!container_exists(g->root, id)) {
        /* create cleaned up after itself */
    } else {
        struct state st;
        if (!state_load(g->root, id, &st)) {
            char dir[4096];
            container_dir(dir, sizeof dir, g->root, id);
            remove_tree(dir);
        }
    }
    if (msg[0])
        fail("%s", msg);
    if (WIFSIGNALED(status))
        fail("the unikernel's create (Node) was killed by signal %d", WTERMSIG(status));
    fail("the unikernel's create (Node) failed with status %d and no message", WEXITSTATUS(status));
}

/* mkdir -p, as runc makes its root. */
static void mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        fail("cannot create the state directory %s: %s", path, strerror(errno));
}

/* argc/argv: the command line from the command word on, for runc. */
static int create(const struct globals *g, const struct parsed *p, int argc, char **argv)
{
    const char *id = one_id(p, 1);
    const char *preserve = opt(p, "preserve-fds", NULL);
    if (container_exists(g->root, id))
        fail("container with id %s already exists", id);
    char bundle[PATH_MAX], why[512];
    const char *b = opt(p, "bundle", "b");
    if (!realpath(b ? b : ".", bundle))
        fail("bundle %s: %s", b ? b : ".", strerror(errno));
    if (bundle_is_unikernel(bundle, why, sizeof why)) {
        if (preserve && strcmp(preserve, "0") != 0)
            fail("create: --preserve-fds %s: a guest keeps only its stdio and its devices", preserve);
        return create_unikernel(g, id, bundle, p);
    }
    const char *runc = find_runc(g);
    if (!runc)
        fail("%s, so not a unikernel, and there is no runc to hand the container to: install runc or give --delegate=PATH", why);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: handing the container to %s", why, runc);
    log_info(msg);
    char dir[4096], rroot[4200];
    container_dir(dir, sizeof dir, g->root, id);
    mkdir_p(g->root);
    if (mkdir(dir, 0700) != 0)
        fail(errno == EEXIST ? "container with id %s already exists" : "cannot create the state of %s: %s", id, strerror(errno));
    state_save_delegated(g->root, id, runc, bundle);
    runc_root(rroot, sizeof rroot, g->root, id);
    int r = run_runc(runc, g, rroot, argc, argv, true);
    if (r != 0)
        remove_tree(dir);
    return r;
}

int main(int argc, char **argv)
{
    struct globals g = { 0 };
    int i = parse_globals(argc, argv, &g);
    log_open(&g);
    log_argv(argc - 1, argv + 1);
    if (i >= argc)
        fail("missing command; see `%s --help`", PROG);
    const char *name = argv[i];
    int cargc = argc - i;
    char **cargv = argv + i;
    if (strcmp(name, "features") == 0) {
        fputs(FEATURES_JSON, stdout);
        return 0;
    }
    if (strcmp(name, "help") == 0) {
        fputs(USAGE, stdout);
        return 0;
    }
    for (size_t k = 0; k < sizeof UNSUPPORTED / sizeof UNSUPPORTED[0]; k++) {
        if (strcmp(name, UNSUPPORTED[k].name) == 0)
            fail("%s is not supported: %s", name, UNSUPPORTED[k].why);
    }
    const struct command *cmd = NULL;
    for (size_t k = 0; k < sizeof COMMANDS / sizeof COMMANDS[0]; k++) {
        if (strcmp(name, COMMANDS[k].name) == 0)
            cmd = &COMMANDS[k];
    }
    if (!cmd)
        fail("unknown command '%s'; see `%s --help`", name, PROG);
    struct parsed p;
    parse_command(cmd, cargc - 1, cargv + 1, &p);

    if (cmd == &COMMANDS[0])
        return create(&g, &p, cargc, cargv);

    char rroot[4200];
    const char *id = one_id(&p, strcmp(name, "kill") == 0 ? 2 : strcmp(name, "exec") == 0 || strcmp(name, "ps") == 0 ? 8 : 1);
    struct state st;
    if (!state_load(g.root, id, &st)) {
        /* As runc: deleting what is not there is an error, unless forced. */
        if (strcmp(name, "delete") == 0 && opt(&p, "force", "f")) {
            if (container_exists(g.root, id)) {
                char dir[4096];
                container_dir(dir, sizeof dir, g.root, id);
                remove_tree(dir); /* a create that died half-way: nothing runs */
            }
            return 0;
        }
        fail("container %s does not exist", id);
    }

    if (strcmp(st.runtime, RUNTIME_RUNC) == 0) {
        runc_root(rroot, sizeof rroot, g.root, id);
        if (strcmp(name, "delete") != 0)
            return run_runc(st.delegate, &g, rroot, cargc, cargv, false);
        int r = run_runc(st.delegate, &g, rroot, cargc, cargv, true);
        if (r == 0) {
            char dir[4096];
            container_dir(dir, sizeof dir, g.root, id);
            remove_tree(dir);
        }
        return r;
    }
    if (strcmp(st.runtime, RUNTIME_TENDRIL) != 0)
        fail("container %s: unknown runtime '%s' in its state", id, st.runtime);

    if (cmd->refusal)
        fail("%s is not supported for container %s: %s", name, id, cmd->refusal);
    if (strcmp(name, "start") == 0)
        return verb_start(&g, id, &st);
    if (strcmp(name, "state") == 0)
        return verb_state(id, &st);
    if (strcmp(name, "kill") == 0)
        return verb_kill(id, &st, p.noperands > 1 ? p.operands[1] : NULL, opt(&p, "all", "a") != NULL);
    if (strcmp(name, "pause") == 0 || strcmp(name, "resume") == 0)
        return verb_pause(id, &st, name[0] == 'r');
    if (strcmp(name, "ps") == 0)
        return verb_ps(id, &st, opt(&p, "format", "f"));
    return verb_delete(&g, id, &st, opt(&p, "force", "f") != NULL);
}
