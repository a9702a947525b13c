/*
 * newpgrp: runs a command in a process group of its own within the
 * caller's session, as a shell with job control starts a job: the group is
 * not orphaned (its leader's parent is in another group of the same
 * session), so SIGTSTP stops it as it would stop a job at a terminal.
 *   newpgrp COMMAND [ARGS...]
 */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: newpgrp COMMAND [ARGS...]\n");
        return 2;
    }
    if (setpgid(0, 0) < 0) {
        perror("setpgid");
        return 2;
    }
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
