/*
 * snapexec: runs the tendril stub on a ready launch plan from C, with no
 * supervisor, for the snapshot benchmarks (bench/snapshot.ts). The plan is
 * made for: plan at fd 3 (a pipe, so concurrent runs never share a file
 * offset), memory file at fd 4, the guest's disk at fd 5.
 *
 *   snapexec run STUB PLAN MEMFILE DISK N C
 *       N runs, C at a time (closed loop): prints each run's fork→exit
 *       latency in µs, one per line, then "total_us T". Any run that does not
 *       exit 0 fails the whole measurement.
 *   snapexec hold STUB PLAN MEMFILE DISK N
 *       starts N guests and prints their pids, one per line, then "ready";
 *       when stdin closes, kills them all (SIGKILL) and reaps them.
 *
 * The guests' console goes to /dev/null.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *plan;
static size_t plan_len;
static int mem_fd, disk_fd, devnull;
static const char *stub;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static char *slurp(const char *file, size_t *len)
{
    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        die(file);
    char *buf = malloc(st.st_size ? st.st_size : 1);
    if (!buf || read(fd, buf, st.st_size) != st.st_size)
        die(file);
    close(fd);
    *len = st.st_size;
    return buf;
}

/* One guest: the plan in a fresh pipe at fd 3, memory at 4, disk at 5. */
static pid_t start(void)
{
    int p[2];
    if (pipe(p) < 0)
        die("pipe");
    if (write(p[1], plan, plan_len) != (ssize_t)plan_len)
        die("writing the plan into a pipe (is it larger than the pipe buffer?)");
    close(p[1]);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        /* Ours are all at 10 and above (close-on-exec); dup2 puts inheritable copies in place. */
        int pp = fcntl(p[0], F_DUPFD_CLOEXEC, 10);
        if (pp < 0 || dup2(pp, 3) < 0 || dup2(mem_fd, 4) < 0 || dup2(disk_fd, 5) < 0 || dup2(devnull, 1) < 0)
            _exit(126);
        char *args[] = { "tendril: bench", "3", NULL };
        execve(stub, args, (char *[]){ NULL });
        _exit(127);
    }
    close(p[0]);
    return pid;
}

int main(int argc, char **argv)
{
    int run = argc == 8 && strcmp(argv[1], "run") == 0;
    int hold = argc == 7 && strcmp(argv[1], "hold") == 0;
    if (!run && !hold) {
        fprintf(stderr, "usage: snapexec run STUB PLAN MEMFILE DISK N C | snapexec hold STUB PLAN MEMFILE DISK N\n");
        return 2;
    }
    stub = argv[2];
    plan = slurp(argv[3], &plan_len);
    /* fds 3-5 are the guest's in the child: keep ours above them. */
    mem_fd = fcntl(open(argv[4], O_RDONLY), F_DUPFD_CLOEXEC, 10);
    disk_fd = fcntl(open(argv[5], O_RDWR), F_DUPFD_CLOEXEC, 10);
    devnull = fcntl(open("/dev/null", O_WRONLY), F_DUPFD_CLOEXEC, 10);
    if (mem_fd < 0 || disk_fd < 0 || devnull < 0)
        die("opening the memory file and the disk");
    int n = atoi(argv[6]);

    if (hold) {
        pid_t *pids = calloc(n, sizeof *pids);
        for (int i = 0; i < n; i++) {
            pids[i] = start();
            printf("%d\n", pids[i]);
        }
        printf("ready\n");
        fflush(stdout);
        char c;
        while (read(0, &c, 1) > 0)
            ;
        for (int i = 0; i < n; i++)
            kill(pids[i], SIGKILL);
        for (int i = 0; i < n; i++)
            waitpid(pids[i], NULL, 0);
        return 0;
    }

    int c = atoi(argv[7]);
    pid_t *inflight = calloc(c, sizeof *inflight);
    double *t0 = calloc(c, sizeof *t0);
    int started = 0, done = 0;
    double begin = now_us();
    for (; started < c && started < n; started++) {
        t0[started] = now_us();
        inflight[started] = start();
    }
    while (done < n) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            die("wait");
        double t1 = now_us();
        int slot = 0;
        while (slot < c && inflight[slot] != pid)
            slot++;
        if (slot == c)
            continue;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "snapexec: run %d ended with status 0x%x\n", done, status);
            return 1;
        }
        printf("%.1f\n", t1 - t0[slot]);
        done++;
        if (started < n) {
            t0[slot] = now_us();
            inflight[slot] = start();
            started++;
        } else {
            inflight[slot] = 0;
        }
    }
    printf("total_us %.1f\n", now_us() - begin);
    return 0;
}
