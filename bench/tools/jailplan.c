/*
 * jailplan: the stub-level cost of --isolate, from C (no supervisor at all).
 * Runs the tendril stub N times on each of several ready launch plans,
 * interleaved (plan 0, plan 1, ..., plan 0, ...) so that drift and noise
 * hit every plan alike: fork + execve + waitpid, and for an isolated plan
 * first what the supervisor does per launch, from a spec file:
 *   mkdir DIR           make a cgroup directory
 *   write FILE VALUE    set a limit
 *   try FILE VALUE      the same if FILE exists
 * (the stub removes the directories when its guest has ended, inside the
 * timed waitpid). Prints one line per launch: "PLAN-INDEX MICROSECONDS".
 *
 *   jailplan STUB N PLAN[,SPEC] ...
 * Each PLAN has its memory file beside it as PLAN.mem; the plan is put at
 * fd 3 and the memory file at fd 4 (the plans name those numbers). The
 * guest's stdout goes to /dev/null; any launch that does not exit 0 stops
 * the run with exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PLANS 16
#define MAX_STEPS 32

struct step {
    int mkdir, optional;
    char path[1024];
    char value[64];
};

struct plan {
    int plan_fd, mem_fd;
    struct step steps[MAX_STEPS];
    int nsteps;
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int memfd_of(const char *file)
{
    int src = open(file, O_RDONLY);
    struct stat st;
    if (src < 0 || fstat(src, &st) < 0) {
        perror(file);
        exit(2);
    }
    int fd = memfd_create("jailplan", MFD_CLOEXEC);
    char *buf = malloc(st.st_size ? st.st_size : 1);
    if (fd < 0 || !buf || read(src, buf, st.st_size) != st.st_size || write(fd, buf, st.st_size) != st.st_size) {
        perror("copying into a memfd");
        exit(2);
    }
    close(src);
    free(buf);
    return fd;
}

static void read_spec(struct plan *p, const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        exit(2);
    }
    char line[1200];
    while (fgets(line, sizeof line, f)) {
        struct step *s = &p->steps[p->nsteps];
        if (p->nsteps == MAX_STEPS)
            break;
        if (sscanf(line, "mkdir %1023s", s->path) == 1)
            s->mkdir = 1;
        else if (sscanf(line, "write %1023s %63s", s->path, s->value) == 2)
            s->mkdir = 0;
        else if (sscanf(line, "try %1023s %63s", s->path, s->value) == 2)
            s->optional = 1;
        else
            continue;
        p->nsteps++;
    }
    fclose(f);
}

static int run_steps(const struct plan *p)
{
    for (int i = 0; i < p->nsteps; i++) {
        const struct step *s = &p->steps[i];
        if (s->mkdir) {
            if (mkdir(s->path, 0755) < 0) {
                fprintf(stderr, "jailplan: mkdir %s: %s\n", s->path, strerror(errno));
                return -1;
            }
        } else {
            int fd = open(s->path, O_WRONLY | O_CLOEXEC);
            if (fd < 0 && errno == ENOENT && s->optional)
                continue;
            if (fd < 0 || write(fd, s->value, strlen(s->value)) < 0) {
                fprintf(stderr, "jailplan: write %s: %s\n", s->path, strerror(errno));
                return -1;
            }
            close(fd);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: jailplan STUB N PLAN[,SPEC] ...\n");
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
        char file[4096], mem[4200];
        snprintf(file, sizeof file, "%s", argv[3 + i]);
        char *comma = strchr(file, ',');
        if (comma) {
            *comma = 0;
            read_spec(&plans[i], comma + 1);
        }
        snprintf(mem, sizeof mem, "%s.mem", file);
        plans[i].plan_fd = memfd_of(file);
        plans[i].mem_fd = memfd_of(mem);
    }
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    for (int r = 0; r < n; r++) {
        for (int i = 0; i < nplans; i++) {
            const struct plan *p = &plans[i];
            lseek(p->plan_fd, 0, SEEK_SET); /* the stub reads from the shared offset */
            double t0 = now_us();
            if (run_steps(p) < 0)
                return 1;
            pid_t pid = fork();
            if (pid == 0) {
                if (dup2(devnull, 1) < 0 || dup2(p->plan_fd, 3) < 0 || dup2(p->mem_fd, 4) < 0)
                    _exit(126);
                char *args[] = { "tendril: bench", "3", NULL };
                execve(argv[1], args, (char *[]){ NULL });
                _exit(127);
            }
            int status;
            waitpid(pid, &status, 0);
            double t1 = now_us();
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "jailplan: plan %d, run %d ended with status 0x%x\n", i, r, status);
                return 1;
            }
            printf("%d %.1f\n", i, t1 - t0);
        }
    }
    return 0;
}
