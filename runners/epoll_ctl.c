/* epoll_ctl.c: the epoll runner under the scheduler (runners/controlled/
 * runner_under_control.h). */
#define AR_BASE ar_runner_epoll
#include "controlled/runner_under_control.h"

const ar_runner ar_runner_epoll_ctl = AR_RUNNER_UNDER_CONTROL("epoll_ctl");
