/* libuv_ctl.c: the libuv runner under the scheduler (runners/controlled/
 * runner_under_control.h): Debian's libuv, real fds and real threads, every
 * thread a task of sim's core and every choice of who runs next a logged
 * decision, so a failure replays and a fix can be searched within a bound. */
#define AR_BASE ar_runner_libuv
#include "controlled/runner_under_control.h"

const ar_runner ar_runner_libuv_ctl = AR_RUNNER_UNDER_CONTROL("libuv_ctl");
