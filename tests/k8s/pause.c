/*
 * The CRI tests' pod sandbox ("pause") program and their ordinary sidecar:
 * a static Linux program, packed into an image by tests/k8s/node.ts
 * (nothing can be pulled on the test machines).
 *
 * Without arguments it waits for SIGTERM or SIGINT and exits 0, as the
 * sandbox container of every pod does. With arguments it first prints them
 * as one line on stdout, then waits the same way (the sidecar); with
 * --exit first, it prints the rest and exits 0 (a command to exec in the
 * sidecar). It reaps any child it is given, as a pod's init must.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig)
{
    (void)sig;
    _exit(0);
}

static void reap(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(int argc, char **argv)
{
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGCHLD, reap);
    int first = 1;
    bool once = argc > 1 && strcmp(argv[1], "--exit") == 0;
    if (once)
        first = 2;
    if (argc > first) {
        for (int i = first; i < argc; i++)
            printf("%s%s", argv[i], i + 1 < argc ? " " : "\n");
        fflush(stdout);
    }
    if (once)
        return 0;
    for (;;)
        pause();
}
