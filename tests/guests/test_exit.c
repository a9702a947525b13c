/*
 * test_exit: the exit status reaches the host.
 *
 * Returns the number given as its command line from solo5_app_main(); the
 * host sees it modulo 256 ("7" -> 7, "300" -> 44, "-1" -> 255, "256" -> 0).
 * With "abort" it calls solo5_abort() instead (255), and with "exit N" it
 * calls solo5_exit(N) directly rather than returning. An empty or
 * unparsable command line exits 0.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    const char *cmd = si->cmdline;
    long long status = 0;
    bool direct = false;

    if (u_strcmp(cmd, "abort") == 0)
        solo5_abort();
    if (cmd[0] == 'e' && cmd[1] == 'x' && cmd[2] == 'i' && cmd[3] == 't'
        && cmd[4] == ' ') {
        direct = true;
        cmd += 5;
    }
    (void)u_parse_int(cmd, &status, NULL);
    printf("Exiting with status %d\n", (int)status);
    if (direct)
        solo5_exit((int)status);
    return (int)status;
}
