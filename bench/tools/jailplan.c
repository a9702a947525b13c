/*
 * jailplan: the stub-level cost of --isolate, from C (no supervisor at all).
 * Runs the tendril stub N times on each of several ready launch plans,
 * interleaved (plan 0, plan 1, ..., plan 0, ...) so that drift and noise
 * hit every plan alike, and prints one line per launch: "PLAN-INDEX
 * MICROSECONDS". Each plan argument is
 *   [pool:]PLAN[,spec=FILE][,pre=FILE][,post=FILE][,jail=HEX][,cg=PARENT]...
 * PLAN has its memory file beside it as PLAN.mem (the plan names fd 4 for
 * it; the plan itself is fd 3). A monitored plan names fd 5 for its report:
 * a pipe whose other end is drained and dropped here.
 *   exec (no "pool:"): timed, fork + execve + waitpid of the stub on the
 *     plan in a memfd, as `tendril run` hands over (minus Node);
 *   pool: the stub is started first with fd 3 a socket and, with jail=, as
 *     a prepared stub (`tendril-stub 3 JAIL PARENT...`, one cg= per cgroup
 *     parent); once it waits for its plan (and its init is ready), timed:
 *     the plan sent on the socket, waitpid. Its own cgroups
 *     (PARENT/tendril-PID-pool) are removed afterwards, untimed.
 *     That is a warm launch of `tendril serve` minus Node and the zygote.
 * Step files list what the supervisor does for a launch: "mkdir DIR",
 * "write FILE VALUE", "try FILE VALUE" (the same if FILE exists), "rmdir
 * DIR". spec= steps are timed (made per launch), pre= steps run untimed
 * before the stub starts (made ahead), post= steps untimed after it ends.
 * Any launch that does not exit 0 stops the run with exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PLANS 16
#define MAX_STEPS 32

enum op { MKDIR, WRITE, TRY, RMDIR };

struct step {
    enum op op;
    char path[1024];
    char value[64];
};

struct steps {
    struct step s[MAX_STEPS];
    int n;
};

struct plan {
    int pool;
    char *bytes;
    long len;
    int plan_fd, mem_fd;
    char jail[256];
    char *parents[4];
    int nparents;
    struct steps spec, pre, post;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static char *slurp(const char *file, long *len)
{
    int src = open(file, O_RDONLY);
    struct stat st;
    if (src < 0 || fstat(src, &st) < 0) {
        perror(file);
        exit(2);
    }
    char *buf = malloc(st.st_size ? st.st_size : 1);
    if (!buf || read(src, buf, st.st_size) != st.st_size) {
        perror(file);
        exit(2);
    }
    close(src);
    *len = st.st_size;
    return buf;
}

static int memfd_of(const char *file)
{
    long len;
    char *buf = slurp(file, &len);
    int fd = memfd_create("jailplan", MFD_CLOEXEC);
    if (fd < 0 || write(fd, buf, len) != len) {
        perror("copying into a memfd");
        exit(2);
    }
    free(buf);
    return fd;
}

static void read_steps(struct steps *st, const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        exit(2);
    }
    char line[1200];
    while (fgets(line, sizeof line, f) && st->n < MAX_STEPS) {
        struct step *s = &st->s[st->n];
        if (sscanf(line, "mkdir %1023s", s->path) == 1)
            s->op = MKDIR;
        else if (sscanf(line, "rmdir %1023s", s->path) == 1)
            s->op = RMDIR;
        else if (sscanf(line, "write %1023s %63s", s->path, s->value) == 2)
            s->op = WRITE;
        else if (sscanf(line, "try %1023s %63s", s->path, s->value) == 2)
            s->op = TRY;
        else
            continue;
        st->n++;
    }
    fclose(f);
}

static void run_steps(const struct steps *st)
{
    for (int i = 0; i < st->n; i++) {
        const struct step *s = &st->s[i];
        int r = 0;
        if (s->op == MKDIR)
            r = mkdir(s->path, 0755);
        else if (s->op == RMDIR)
            r = rmdir(s->path);
        else {
            int fd = open(s->path, O_WRONLY | O_CLOEXEC);
            if (fd < 0 && errno == ENOENT && s->op == TRY)
                continue;
            r = fd < 0 ? -1 : (int)write(fd, s->value, strlen(s->value));
            if (fd >= 0)
                close(fd);
        }
        if (r < 0) {
            fprintf(stderr, "jailplan: %s: %s\n", s->path, strerror(errno));
            exit(1);
        }
    }
}

/* The leading number of a small /proc file, or -1 if it cannot be read. */
static long leading_number(const char *path)
{
    char buf[64];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    long n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

/* The call PID is blocked in (the first word of /proc/PID/syscall), or -1. */
static long blocked_in(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", pid);
    return leading_number(path);
}

static pid_t first_child(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    return (pid_t)leading_number(path);
}

static int check(int status, int i, int r)
{
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "jailplan: plan %d, run %d ended with status 0x%x\n", i, r, status);
        exit(1);
    }
    return 0;
}

static void run_exec(const struct plan *p, const char *stub, int devnull, int i, int r)
{
    lseek(p->plan_fd, 0, SEEK_SET); /* the stub reads from the shared offset */
    double t0 = now_us();
    run_steps(&p->spec);
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(devnull, 1) < 0 || dup2(p->plan_fd, 3) < 0 || dup2(p->mem_fd, 4) < 0)
            _exit(126);
        char *args[] = { "tendril: bench", "3", NULL };
        execve(stub, args, (char *[]){ NULL });
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    double t1 = now_us();
    check(status, i, r);
    run_steps(&p->post);
    printf("%d %.1f\n", i, t1 - t0);
}

static void run_pool(const struct plan *p, const char *stub, int devnull, int i, int r)
{
    run_steps(&p->pre);
    int sv[2], rep[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
        perror("socketpair");
        exit(2);
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(devnull, 1) < 0 || dup2(sv[1], 3) < 0 || dup2(p->mem_fd, 4) < 0 || dup2(rep[1], 5) < 0)
            _exit(126);
        char *args[8] = { "tendril: bench", "3", p->jail[0] ? (char *)p->jail : NULL };
        for (int k = 0; p->jail[0] && k < p->nparents; k++)
            args[3 + k] = p->parents[k];
        execve(stub, args, (char *[]){ NULL });
        _exit(127);
    }
    close(sv[1]);
    close(rep[1]);
    /* Ready: the stub blocked on its plan (recvmsg, 47), and a prepared one's init waiting (rt_sigtimedwait, 128). */
    for (int k = 0;; k++) {
        pid_t init = p->jail[0] ? first_child(pid) : 0;
        if (blocked_in(pid) == 47 && (!p->jail[0] || (init > 0 && blocked_in(init) == 128)))
            break;
        if (k > 200000) {
            fprintf(stderr, "jailplan: plan %d: the stub never got ready\n", i);
            exit(1);
        }
        usleep(50);
    }
    double t0 = now_us();
    run_steps(&p->spec);
    if (write(sv[0], p->bytes, p->len) != p->len) {
        perror("sending the plan");
        exit(1);
    }
    int status;
    waitpid(pid, &status, 0);
    double t1 = now_us();
    close(sv[0]);
    char drain[512];
    while (read(rep[0], drain, sizeof drain) > 0)
        ;
    close(rep[0]);
    check(status, i, r);
    run_steps(&p->post);
    for (int k = 0; k < p->nparents; k++) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/tendril-%d-pool", p->parents[k], pid);
        if (rmdir(dir) < 0) {
            fprintf(stderr, "jailplan: rmdir %s: %s\n", dir, strerror(errno));
            exit(1);
        }
    }
    printf("%d %.1f\n", i, t1 - t0);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: jailplan STUB N [pool:]PLAN[,spec=F][,pre=F][,post=F][,jail=HEX] ...\n");
        return 2;
    }
    int n = atoi(argv[2]);
    int nplans = argc - 3;
    static struct plan plans[MAX_PLANS];
    if (nplans > MAX_PLANS)
        return 2;
    /* Hold fds 3 and 4, so that no memfd lands there (the child dup2s onto them). */
    close(3);
    close(4);
    if (open("/dev/null", O_RDONLY | O_CLOEXEC) != 3 || open("/dev/null", O_RDONLY | O_CLOEXEC) != 4) {
        fprintf(stderr, "jailplan: fds 3 and 4 must be free\n");
        return 2;
    }
    for (int i = 0; i < nplans; i++) {
        struct plan *p = &plans[i];
        char *arg = strdup(argv[3 + i]);
        if (strncmp(arg, "pool:", 5) == 0) {
            p->pool = 1;
            arg += 5;
        }
        char *file = strtok(arg, ",");
        for (char *kv; (kv = strtok(NULL, ","));) {
            if (strncmp(kv, "spec=", 5) == 0)
                read_steps(&p->spec, kv + 5);
            else if (strncmp(kv, "pre=", 4) == 0)
                read_steps(&p->pre, kv + 4);
            else if (strncmp(kv, "post=", 5) == 0)
                read_steps(&p->post, kv + 5);
            else if (strncmp(kv, "jail=", 5) == 0)
                snprintf(p->jail, sizeof p->jail, "%s", kv + 5);
            else if (strncmp(kv, "cg=", 3) == 0 && p->nparents < 4)
                p->parents[p->nparents++] = kv + 3;
        }
        char mem[4200];
        snprintf(mem, sizeof mem, "%s.mem", file);
        p->bytes = slurp(file, &p->len);
        p->plan_fd = memfd_of(file);
        p->mem_fd = memfd_of(mem);
    }
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    for (int r = 0; r < n; r++)
        for (int i = 0; i < nplans; i++)
            (plans[i].pool ? run_pool : run_exec)(&plans[i], argv[1], devnull, i, r);
    return 0;
}
