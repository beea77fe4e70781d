/* asyncrace.h: the one header a case includes. Never uv.h or event2/: a case
 * gets the runner it was given and stays blind to the backend. */
#ifndef ASYNCRACE_H
#define ASYNCRACE_H

#include "case.h"
#include "fixture.h"
#include "points.h"
#include "race.h"
#include "runtime.h"

#define AR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
