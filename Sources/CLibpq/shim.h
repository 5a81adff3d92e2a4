#ifndef CLIBPQ_SHIM_H
#define CLIBPQ_SHIM_H
// -I/usr/include/postgresql comes from pkg-config (libpq.pc); never hard-code the path.
#include <libpq-fe.h>
#endif
