/*
 * execplan: the floor for launch latency. Runs a program N times with
 * fork + execve + waitpid from C and prints per-launch latencies (µs), one
 * per line. Two modes:
 *   execplan stub STUB PLANFILE N   the tendril stub on a ready launch plan
 *                                   (made for the plan at fd 3 and the
 *                                   memory file PLANFILE.mem at fd 4)
 *   execplan exec PROGRAM N          any program, e.g. /bin/true
 * The guest's stdout goes to /dev/null.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* A memfd with the contents of file, at fd number `at`. */
static int memfd_of(const char *file, int at)
{
    int src = open(file, O_RDONLY);
    struct stat st;
    if (src < 0 || fstat(src, &st) < 0) {
        perror(file);
        exit(2);
    }
    int fd = memfd_create("execplan", 0);
    char *buf = malloc(st.st_size ? st.st_size : 1);
    if (fd < 0 || !buf || read(src, buf, st.st_size) != st.st_size || write(fd, buf, st.st_size) != st.st_size) {
        perror("copying into a memfd");
        exit(2);
    }
    close(src);
    free(buf);
    if (fd != at && (dup2(fd, at) < 0 || close(fd) < 0)) {
        perror("dup2");
        exit(2);
    }
    return at;
}

int main(int argc, char **argv)
{
    int stub_mode = argc == 5 && strcmp(argv[1], "stub") == 0;
    if (!stub_mode && !(argc == 4 && strcmp(argv[1], "exec") == 0)) {
        fprintf(stderr, "usage: execplan stub STUB PLANFILE N | execplan exec PROGRAM N\n");
        return 2;
    }
    int n = atoi(argv[stub_mode ? 4 : 3]);
    int plan = -1;
    if (stub_mode) {
        char mem[4096];
        snprintf(mem, sizeof mem, "%s.mem", argv[3]);
        /* fds 3 and 4 must be ours: park anything inherited there. */
        close(3);
        close(4);
        plan = memfd_of(argv[3], 3);
        memfd_of(mem, 4);
    }
    int devnull = open("/dev/null", O_WRONLY);
    for (int i = 0; i < n; i++) {
        if (plan >= 0)
            lseek(plan, 0, SEEK_SET); /* the stub reads from the shared offset */
        double t0 = now_us();
        pid_t pid = fork();
        if (pid == 0) {
            dup2(devnull, 1);
            if (stub_mode) {
                char *args[] = { "tendril: bench", "3", NULL };
                execve(argv[2], args, (char *[]){ NULL });
            } else {
                char *args[] = { argv[2], NULL };
                execve(argv[2], args, (char *[]){ NULL });
            }
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        double t1 = now_us();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "execplan: run %d ended with status 0x%x\n", i, status);
            return 1;
        }
        printf("%.1f\n", t1 - t0);
    }
    return 0;
}
