/* libevent_ctl.c: the libevent runner under the scheduler (runners/controlled/
 * runner_under_control.h). */
#define AR_BASE ar_runner_libevent
#include "controlled/runner_under_control.h"

const ar_runner ar_runner_libevent_ctl = AR_RUNNER_UNDER_CONTROL("libevent_ctl");
