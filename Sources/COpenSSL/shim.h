#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

// OPENSSL_free is a macro; Swift cannot call it directly.
static inline void copenssl_free(void *p) { OPENSSL_free(p); }
#endif
