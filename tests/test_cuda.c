/* test_cuda.c: the CUDA backend (src/cuda/) against the CPU path.
 *
 * Always: bad device parameters are refused, and eng_cuda_info() says
 * something. Without a usable GPU (or in a build without CUDA): a CUDA context
 * fails with ENG_ERR_NO_DEVICE and a message naming CUDA, then the program
 * prints "skip: no CUDA device" and exits 77. With a GPU: every tiny golden
 * model (tests/golden/tiny, converted here) and the SST-2 models (from
 * $ENGINE_BUILD/models, sentences from $ENGINE_SHARED) run on the GPU in each
 * precision and are compared with the CPU, batched and one by one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bert_layout.h"
#include "engine.h"
#include "testutil.h"

#define GOLDEN_DIR "tests/golden/tiny"
#define TOL_FP32 1e-4f     /* GPU fp32 vs CPU, as the CPU vs PyTorch */
#define TOL_TF32 2e-2f     /* TF32 products keep 10 mantissa bits */
#define TOL_HALF 1e-1f     /* fp16/bf16 operands (bf16: 8 mantissa bits) */
#define LABEL_MARGIN 0.1f  /* a label may differ only where the CPU's top two
                              logits are closer than this */
#define SST2_SENTENCES 256

static const char *MODELS[] = {
    "bert-gelu-new-3labels",   "bert-legacy-bf16",       "distilbert-relu-bin",
    "st-encoder-cls-norm-f16", "bert-encoder-mean-relu",
};
enum { N_MODELS = sizeof MODELS / sizeof MODELS[0] };

static const eng_precision PRECS[] = {ENG_PREC_FP32, ENG_PREC_TF32, ENG_PREC_FP16, ENG_PREC_BF16};
static const float PREC_TOL[] = {TOL_FP32, TOL_TF32, TOL_HALF, TOL_HALF};
static const char *const PREC_NAME[] = {"fp32", "tf32", "fp16", "bf16"};

static char tiny_path[N_MODELS][256];   /* converted in main() */

static eng_status cuda_ctx(const eng_model *m, eng_precision p, eng_ctx **out)
{
    eng_ctx_params cp = eng_ctx_default_params();
    cp.device = ENG_DEVICE_CUDA;
    cp.precision = p;
    return eng_ctx_init(m, &cp, out);
}

static eng_model *load(const char *path)
{
    eng_model *m = NULL;
    ck_assert_msg(eng_model_load(path, NULL, &m) == ENG_OK, "load %s: %s", path, eng_last_error());
    return m;
}

START_TEST(test_bad_params_refused)
{
    eng_model *m = load(tiny_path[0]);
    eng_ctx *ctx = NULL;
    eng_ctx_params cp = eng_ctx_default_params();
    cp.precision = ENG_PREC_FP16; /* fp16 on the CPU */
    ck_assert_int_eq(eng_ctx_init(m, &cp, &ctx), ENG_ERR_UNSUPPORTED);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(eng_last_error(), "fp16"));
    cp = eng_ctx_default_params();
    cp.device = (eng_device)7;
    ck_assert_int_eq(eng_ctx_init(m, &cp, &ctx), ENG_ERR_INVALID_ARG);
    cp = eng_ctx_default_params();
    cp.device = ENG_DEVICE_CUDA;
    cp.precision = (eng_precision)9;
    ck_assert_int_eq(eng_ctx_init(m, &cp, &ctx), ENG_ERR_INVALID_ARG);
    cp.precision = ENG_PREC_FP32;
    cp.device_index = -1;
    ck_assert_int_eq(eng_ctx_init(m, &cp, &ctx), ENG_ERR_INVALID_ARG);
    ck_assert_ptr_null(ctx);
    const char *info = eng_cuda_info();
    ck_assert_ptr_nonnull(info);
    ck_assert_int_gt((int)strlen(info), 0);
    eng_model_free(m);
}
END_TEST

START_TEST(test_no_device_is_a_clear_error)
{
    eng_model *m = load(tiny_path[0]);
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(cuda_ctx(m, ENG_PREC_FP32, &ctx), ENG_ERR_NO_DEVICE);
    ck_assert_ptr_null(ctx);
    const char *why = eng_last_error();
    ck_assert_msg(strstr(why, "CUDA") != NULL, "message does not name CUDA: %s", why);
    printf("no device: eng_ctx_init says \"%s\"; eng_cuda_info says \"%s\"\n", why,
           eng_cuda_info());
    /* The CPU still works beside it. */
    ck_assert_int_eq(eng_ctx_init(m, NULL, &ctx), ENG_OK);
    eng_ctx_free(ctx);
    eng_model_free(m);
}
END_TEST

/* Runs seqs through ctx: logits (n x width) when classify, else embeddings. */
static void run(eng_ctx *ctx, int classify, const eng_seq *seqs, int n, float *out, int *labels)
{
    eng_status st = classify ? eng_classify_ids(ctx, seqs, n, out, NULL, labels, NULL)
                             : eng_embed_ids(ctx, seqs, n, out, NULL);
    ck_assert_msg(st == ENG_OK, "%s", eng_ctx_last_error(ctx));
}

/* Compares GPU and CPU outputs row by row; labels must agree except near
 * ties. Returns the largest difference. */
static float compare(const char *what, const float *gpu, const float *cpu, const int *gl,
                     const int *cl, int n, int width, float tol)
{
    float worst = 0.0f;
    for (int r = 0; r < n; r++) {
        for (int k = 0; k < width; k++) {
            float d = fabsf(gpu[r * width + k] - cpu[r * width + k]);
            worst = fmaxf(worst, d);
            ck_assert_msg(d <= tol, "%s row %d output %d: GPU %g, CPU %g", what, r, k,
                          (double)gpu[r * width + k], (double)cpu[r * width + k]);
        }
        if (gl && gl[r] != cl[r]) {
            const float *c = cpu + r * width;
            ck_assert_msg(fabsf(c[gl[r]] - c[cl[r]]) < LABEL_MARGIN,
                          "%s row %d: GPU label %d, CPU label %d", what, r, gl[r], cl[r]);
        }
    }
    return worst;
}

START_TEST(test_tiny_models_match_cpu)
{
    const int mi = _i / 4, pi = _i % 4;
    static test_golden g;
    test_read_golden(MODELS[mi], &g);
    const int n = g.n, width = g.width;
    eng_model *m = load(tiny_path[mi]);
    eng_model_info info;
    eng_model_get_info(m, &info);
    const int classify = info.n_labels > 0;
    ck_assert_int_eq(classify, g.is_logits);
    static float ref[TEST_GOLDEN_ROWS * TEST_GOLDEN_OUT]; /* the reference rows, packed */
    for (int r = 0; r < n; r++)
        memcpy(ref + r * width, g.expect[r], (size_t)width * sizeof *ref);
    eng_ctx *cpu = NULL, *gpu = NULL;
    ck_assert_int_eq(eng_ctx_init(m, NULL, &cpu), ENG_OK);
    ck_assert_msg(cuda_ctx(m, PRECS[pi], &gpu) == ENG_OK, "%s", eng_last_error());
    static float c_out[TEST_GOLDEN_ROWS * TEST_GOLDEN_OUT], g_out[TEST_GOLDEN_ROWS * TEST_GOLDEN_OUT],
        alone[TEST_GOLDEN_OUT];
    int cl[TEST_GOLDEN_ROWS], gl[TEST_GOLDEN_ROWS], al;
    run(cpu, classify, g.seq, n, c_out, cl);
    run(gpu, classify, g.seq, n, g_out, gl);
    char what[128];
    snprintf(what, sizeof what, "%s %s", MODELS[mi], PREC_NAME[pi]);
    float worst = compare(what, g_out, c_out, classify ? gl : NULL, cl, n, width, PREC_TOL[pi]);
    if (PRECS[pi] == ENG_PREC_FP32) /* and against PyTorch directly */
        compare(what, g_out, ref, NULL, NULL, n, width, TOL_FP32);
    for (int r = 0; r < n; r++) { /* alone = batched: no sequence sees another */
        run(gpu, classify, &g.seq[r], 1, alone, &al);
        compare(what, alone, g_out + r * width, NULL, NULL, 1, width, PREC_TOL[pi]);
    }
    printf("%s: %d sequences, max |GPU - CPU| = %.3g\n", what, n, (double)worst);
    eng_ctx_free(gpu);
    eng_ctx_free(cpu);
    eng_model_free(m);
}
END_TEST

START_TEST(test_sst2_matches_cpu)
{
    static const char *const names[] = {"models/sst2-bert-mini.eng",
                                        "models/sst2-distilbert-mini.eng"};
    const char *dev = test_shared_path("data/sst2/dev.tsv");
    const char *model_path = test_build_path(names[_i / 4]);
    if (!dev || access(model_path, R_OK) != 0) {
        printf("note: %s or the SST-2 dev set is absent: SST-2 on CUDA not checked\n", model_path);
        return;
    }
    const int pi = _i % 4;
    char *text = test_read_file(dev, NULL);
    ck_assert_ptr_nonnull(text);
    int nl = 0;
    char **lines = test_split_lines(text, &nl);
    const char *texts[SST2_SENTENCES];
    int n = 0;
    for (int i = 1; i < nl && n < SST2_SENTENCES; i++) { /* line 0 is the header */
        char *tab = strchr(lines[i], '\t');
        if (tab) {
            *tab = '\0';
            texts[n++] = lines[i];
        }
    }
    eng_model *m = load(model_path);
    eng_model_info info;
    eng_model_get_info(m, &info);
    eng_ctx *cpu = NULL, *gpu = NULL;
    ck_assert_int_eq(eng_ctx_init(m, NULL, &cpu), ENG_OK);
    ck_assert_msg(cuda_ctx(m, PRECS[pi], &gpu) == ENG_OK, "%s", eng_last_error());
    const int C = info.n_labels;
    float *c_out = malloc(sizeof(float) * n * C), *g_out = malloc(sizeof(float) * n * C);
    float *g_probs = malloc(sizeof(float) * n * C);
    int *cl = malloc(sizeof(int) * n), *gl = malloc(sizeof(int) * n);
    ck_assert_int_eq(eng_classify(cpu, texts, n, c_out, NULL, cl, NULL), ENG_OK);
    ck_assert_msg(eng_classify(gpu, texts, n, g_out, g_probs, gl, NULL) == ENG_OK, "%s",
                  eng_ctx_last_error(gpu));
    char what[128];
    snprintf(what, sizeof what, "%s %s", names[_i / 4], PREC_NAME[pi]);
    float worst = compare(what, g_out, c_out, gl, cl, n, C, PREC_TOL[pi]);
    int same = 0;
    for (int r = 0; r < n; r++) {
        float sum = 0.0f;
        for (int k = 0; k < C; k++)
            sum += g_probs[r * C + k];
        ck_assert_float_eq_tol(sum, 1.0f, 1e-5f);
        same += gl[r] == cl[r];
    }
    printf("%s: %d sentences, max |GPU - CPU| = %.3g, labels equal %d/%d\n", what, n,
           (double)worst, same, n);
    free(c_out);
    free(g_out);
    free(g_probs);
    free(cl);
    free(gl);
    eng_ctx_free(gpu);
    eng_ctx_free(cpu);
    eng_model_free(m);
    free(lines);
    free(text);
}
END_TEST

int main(void)
{
    if (access(GOLDEN_DIR, R_OK) != 0) {
        printf("FAIL test_cuda: %s not found (run from the repository root)\n", GOLDEN_DIR);
        return 1;
    }
    for (int i = 0; i < N_MODELS; i++) {
        char dir[512], err[512];
        cv_config cfg;
        cv_report rep;
        snprintf(dir, sizeof dir, "%s/%s", GOLDEN_DIR, MODELS[i]);
        snprintf(tiny_path[i], sizeof tiny_path[i], "/tmp/eng-test-cuda-%d-%s.eng", (int)getpid(),
                 MODELS[i]);
        if (cv_convert_hf(dir, tiny_path[i], &cfg, &rep, err, sizeof err) != ENG_OK) {
            printf("FAIL test_cuda: convert %s: %s\n", MODELS[i], err);
            return 1;
        }
        cv_config_free(&cfg);
    }
    /* Is there a device? A CUDA context on the first tiny model tells. */
    eng_model *m = NULL;
    eng_ctx *ctx = NULL;
    int have_gpu = 0;
    eng_status s = eng_model_load(tiny_path[0], NULL, &m);
    if (s == ENG_OK && (s = cuda_ctx(m, ENG_PREC_FP32, &ctx)) == ENG_OK)
        have_gpu = 1;
    eng_ctx_free(ctx);
    eng_model_free(m);
    if (s != ENG_OK && s != ENG_ERR_NO_DEVICE) {
        printf("FAIL test_cuda: probing the GPU gave %s: %s\n", eng_status_str(s),
               eng_last_error());
        return 1;
    }

    Suite *suite = suite_create("cuda");
    TCase *tc = tcase_create("params");
    tcase_add_test(tc, test_bad_params_refused);
    if (!have_gpu)
        tcase_add_test(tc, test_no_device_is_a_clear_error);
    suite_add_tcase(suite, tc);
    if (have_gpu) {
        tc = tcase_create("gpu");
        tcase_set_timeout(tc, 120);
        tcase_add_loop_test(tc, test_tiny_models_match_cpu, 0, N_MODELS * 4);
        tcase_add_loop_test(tc, test_sst2_matches_cpu, 0, 2 * 4);
        suite_add_tcase(suite, tc);
    }
    int rc = test_run_suite(suite);
    for (int i = 0; i < N_MODELS; i++)
        unlink(tiny_path[i]);
    if (rc == 0 && !have_gpu) {
        printf("skip: no CUDA device (%s); the GPU comparisons did not run\n", eng_cuda_info());
        return TEST_SKIP;
    }
    return rc;
}
