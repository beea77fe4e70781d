/* libev_ctl.c: the libev runner under the scheduler (runners/controlled/
 * runner_under_control.h). */
#define AR_BASE ar_runner_libev
#include "controlled/runner_under_control.h"

const ar_runner ar_runner_libev_ctl = AR_RUNNER_UNDER_CONTROL("libev_ctl");
