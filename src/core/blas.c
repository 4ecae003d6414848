/* blas.c: the CPU GEMM backend. OpenBLAS is loaded with dlopen() rather than
 * linked, for one reason: its run-time kernel choice happens when the library
 * loads, and Debian's OpenBLAS 0.3.21 does not recognise recent AMD cores
 * (Zen 4/5) as AVX-512 capable, so it picks its Haswell kernels (about half the
 * speed). OPENBLAS_CORETYPE must therefore be in the environment before the
 * library loads, which only a run-time load can guarantee for our users. We set
 * it to SkylakeX when our own CPUID/XGETBV detection confirms AVX-512 (and
 * ENG_ISA does not lower us) and the variable is unset or names a core without
 * AVX-512: some hosts set OPENBLAS_CORETYPE=Haswell globally as a safe default
 * for every program, which would silently halve our GEMM speed. Users who
 * really want their own value set ENG_BLAS_KEEP_CORETYPE=1.
 * eng__blas_name() reports the core OpenBLAS finally chose. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blas.h"
#include "kernels.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc);

static struct {
    pthread_once_t once;
    sgemm_fn sgemm;
    char name[128];
    char error[256];
} blas = {.once = PTHREAD_ONCE_INIT};

/* The OpenBLAS core names whose kernels use AVX-512. */
static int coretype_has_avx512(const char *v)
{
    return v && (!strcasecmp(v, "SkylakeX") || !strcasecmp(v, "Cooperlake") ||
                 !strcasecmp(v, "SapphireRapids"));
}

/* setenv() races with any other thread's getenv(), so it runs while the
 * library is being loaded: before main() for a program linked with it, when
 * no host thread exists yet. A model load, much later and on any thread, only
 * reads the environment. The thread-safety rule in engine.h states the one
 * case left (a host that dlopen()s libengine.so while its threads run). */
__attribute__((constructor)) static void blas_set_coretype(void)
{
    const char *keep = getenv("ENG_BLAS_KEEP_CORETYPE");
    if (eng__kernels_get()->isa >= ENG_ISA_AVX512 && !(keep && *keep == '1') &&
        !coretype_has_avx512(getenv("OPENBLAS_CORETYPE")))
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
}

static void blas_load(void)
{
    static const char *const candidates[] = {"libopenblas.so.0", "libopenblas.so"};
    void *lib = NULL;
    const char *override = getenv("ENG_BLAS_LIB");
    if (override && *override)
        lib = dlopen(override, RTLD_NOW | RTLD_LOCAL);
    for (size_t i = 0; !lib && i < sizeof candidates / sizeof candidates[0]; i++)
        lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(blas.error, sizeof blas.error,
                 "OpenBLAS not found (install Debian's libopenblas0, or set ENG_BLAS_LIB): %s",
                 dlerror());
        return;
    }
    /* Casting through a union keeps -Wpedantic quiet about object/function
     * pointer conversion, which POSIX guarantees for dlsym results. */
    union {
        void *p;
        sgemm_fn f;
    } sg = {dlsym(lib, "cblas_sgemm")};
    union {
        void *p;
        void (*f)(int);
    } st = {dlsym(lib, "openblas_set_num_threads")};
    union {
        void *p;
        char *(*f)(void);
    } cn = {dlsym(lib, "openblas_get_corename")};
    union {
        void *p;
        char *(*f)(void);
    } cf = {dlsym(lib, "openblas_get_config")};
    if (!sg.p) {
        snprintf(blas.error, sizeof blas.error, "%s has no cblas_sgemm",
                 override ? override : "libopenblas");
        return;
    }
    blas.sgemm = sg.f;
    /* Contexts thread the forward pass themselves (team.h): each GEMM call
     * runs on the calling thread. */
    if (st.p)
        st.f(1);
    snprintf(blas.name, sizeof blas.name, "%s (%s)", cf.p ? cf.f() : "BLAS",
             cn.p ? cn.f() : "unknown core");
}

eng_status eng__blas_init(char *err, size_t errlen)
{
    pthread_once(&blas.once, blas_load);
    if (!blas.sgemm) {
        snprintf(err, errlen, "%s", blas.error);
        return ENG_ERR_UNSUPPORTED;
    }
    return ENG_OK;
}

void eng__sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc)
{
    blas.sgemm(CBLAS_ROW_MAJOR, trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS,
               trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, M, N, K, alpha, A, lda, B, ldb, beta, C,
               ldc);
}

const char *eng__blas_name(void)
{
    return blas.sgemm ? blas.name : "none";
}
