/* test_sched_image.c: the batching scheduler with an image model
 * (eng_sched_submit_image): every request completes exactly once, a batched
 * result equals the image's result alone, a corrupt image in a batch fails
 * alone, and texts, ids and embeddings are refused by an image model. The
 * model is $ENGINE_SHARED's random-weight ResNet-18, converted into a
 * temporary folder; the test skips when $ENGINE_SHARED is absent. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "resnet.h"
#include "testutil.h"

#define N_GOOD 6             /* real images submitted */
#define N_REQ (N_GOOD + 1)   /* and one corrupt one, in the middle */
#define CORRUPT_AT 3
#define BATCH 4
/* Batches form while the worker waits this long for company. */
#define WAIT_US 500000
/* A batched image's logits against the same image alone: exact, because
 * each output is summed in the same order whatever the batch (test_cnn's
 * BATCH_TOL; measured: 0). */
#define BATCH_REL_TOL 0.0

static char model_path[512];
static char *bytes[N_GOOD];
static size_t n_bytes[N_GOOD];
static const char corrupt[] = "\xff\xd8\xff\xe0 this is not a JPEG at all";

static const char *const image_names[N_GOOD] = {
    "n01440764_tench.JPEG",  "n01530575_brambling.JPEG", "n01601694_water_ouzel.JPEG",
    "n01440764_tench.JPEG",  "n01530575_brambling.JPEG", "n01601694_water_ouzel.JPEG",
};

/* Completion log: how often each request completed, and its outputs. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int n_labels;
static struct {
    int count[N_REQ];
    eng_status status[N_REQ];
    int batch[N_REQ];
    int label[N_REQ];
    int n_tokens[N_REQ];
    float *logits;   /* N_REQ x n_labels */
} done_log;

static void on_done(const eng_sched_result *r)
{
    int i = (int)(intptr_t)r->user;
    pthread_mutex_lock(&log_mu);
    done_log.count[i]++;
    done_log.status[i] = r->status;
    done_log.batch[i] = r->batch_size;
    done_log.label[i] = r->label;
    done_log.n_tokens[i] = r->n_tokens;
    if (r->status == ENG_OK && r->n_out == n_labels)
        memcpy(done_log.logits + (size_t)i * n_labels, r->out, (size_t)n_labels * sizeof(float));
    pthread_mutex_unlock(&log_mu);
}

static double rel_err(const float *a, const float *ref, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

START_TEST(batched_equals_single_and_corrupt_fails_alone)
{
    eng_model *m = NULL;
    ck_assert_int_eq(eng_model_load(model_path, NULL, &m), ENG_OK);
    eng_model_info info;
    eng_model_get_info(m, &info);
    ck_assert_int_eq(info.input, ENG_INPUT_IMAGE);
    n_labels = info.n_labels;
    ck_assert_int_gt(n_labels, 1);

    /* Each image alone, straight through the context API. */
    float *single = malloc((size_t)N_GOOD * n_labels * sizeof *single);
    eng_ctx *ctx = NULL;
    ck_assert_int_eq(eng_ctx_init(m, NULL, &ctx), ENG_OK);
    for (int i = 0; i < N_GOOD; i++) {
        const void *d = bytes[i];
        eng_status st;
        ck_assert_int_eq(eng_classify_image_data(ctx, &d, &n_bytes[i], 1,
                                                 single + (size_t)i * n_labels, NULL, NULL, &st),
                         ENG_OK);
    }
    eng_ctx_free(ctx);

    eng_sched_params p = eng_sched_default_params();
    p.model = m;
    p.n_workers = 1;
    p.max_batch_size = BATCH;
    p.max_wait_us = WAIT_US;
    p.max_batch_tokens = 1;   /* ignored for images: must not split the batches */
    eng_sched *s = NULL;
    ck_assert_msg(eng_sched_create(&p, &s) == ENG_OK, "%s", eng_last_error());

    memset(&done_log, 0, sizeof done_log);
    done_log.logits = calloc((size_t)N_REQ * n_labels, sizeof(float));
    eng_sched_req rq = eng_sched_default_req();
    rq.done = on_done;
    for (int i = 0, g = 0; i < N_REQ; i++) {
        rq.user = (void *)(intptr_t)i;
        eng_status st = i == CORRUPT_AT
                            ? eng_sched_submit_image(s, corrupt, sizeof corrupt - 1, &rq, NULL)
                            : eng_sched_submit_image(s, bytes[g], n_bytes[g], &rq, NULL);
        ck_assert_msg(st == ENG_OK, "submit %d: %s", i, eng_last_error());
        g += i != CORRUPT_AT;
    }
    /* A ticket too, for the same image as request 0. */
    eng_sched_req tr = eng_sched_default_req();
    eng_sched_ticket *tk = NULL;
    ck_assert_int_eq(eng_sched_submit_image(s, bytes[0], n_bytes[0], &tr, &tk), ENG_OK);
    eng_sched_result res;
    ck_assert_int_eq(eng_sched_wait(s, tk, &res), ENG_OK);
    ck_assert_int_eq(res.n_out, n_labels);
    ck_assert_double_le(rel_err(res.out, single, n_labels), BATCH_REL_TOL);
    eng_sched_release(s, tk);
    eng_sched_shutdown(s);

    int max_batch = 0;
    for (int i = 0, g = 0; i < N_REQ; i++) {
        ck_assert_msg(done_log.count[i] == 1, "request %d completed %d times", i,
                      done_log.count[i]);
        ck_assert_int_eq(done_log.n_tokens[i], 1);
        if (done_log.batch[i] > max_batch)
            max_batch = done_log.batch[i];
        if (i == CORRUPT_AT) {
            ck_assert_int_ne(done_log.status[i], ENG_OK);
            ck_assert_int_ne(done_log.status[i], ENG_ERR_TIMEOUT);
            ck_assert_int_eq(done_log.label[i], -1);
            continue;
        }
        ck_assert_msg(done_log.status[i] == ENG_OK, "request %d: %s", i,
                      eng_status_str(done_log.status[i]));
        double e = rel_err(done_log.logits + (size_t)i * n_labels, single + (size_t)g * n_labels,
                           n_labels);
        ck_assert_msg(e <= BATCH_REL_TOL, "request %d: batched vs single rel err %g", i, e);
        g++;
    }
    /* The corrupt image shared its batch with good ones that still succeeded. */
    ck_assert_int_gt(done_log.batch[CORRUPT_AT], 1);
    ck_assert_int_le(max_batch, BATCH);
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.completed, N_GOOD + 1);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(st.rejected, 0);
    eng_sched_free(s);
    free(done_log.logits);
    free(single);
    eng_model_free(m);
}
END_TEST

START_TEST(texts_refused_by_image_model)
{
    eng_model *m = NULL;
    ck_assert_int_eq(eng_model_load(model_path, NULL, &m), ENG_OK);
    eng_sched_params p = eng_sched_default_params();
    p.model = m;
    p.n_workers = 1;
    eng_sched *s = NULL;
    ck_assert_msg(eng_sched_create(&p, &s) == ENG_OK, "%s", eng_last_error());
    eng_sched_req rq = eng_sched_default_req();
    rq.done = on_done;
    ck_assert_int_eq(eng_sched_submit(s, "a text", 6, &rq, NULL), ENG_ERR_UNSUPPORTED);
    const int32_t ids[3] = {101, 2000, 102};
    ck_assert_int_eq(eng_sched_submit_ids(s, ids, 3, &rq, NULL), ENG_ERR_UNSUPPORTED);
    rq.task = ENG_TASK_EMBED;
    ck_assert_int_eq(eng_sched_submit_image(s, bytes[0], n_bytes[0], &rq, NULL),
                     ENG_ERR_UNSUPPORTED);
    rq.task = ENG_TASK_CLASSIFY;
    ck_assert_int_eq(eng_sched_submit_image(s, NULL, 10, &rq, NULL), ENG_ERR_INVALID_ARG);
    eng_sched_stats st;
    eng_sched_get_stats(s, &st);
    ck_assert_uint_eq(st.rejected, 4);
    ck_assert_uint_eq(st.submitted, 4);
    eng_sched_free(s);
    eng_model_free(m);
}
END_TEST

int main(void)
{
    const char *weights_rel = "models/resnet18-random/resnet18.pth";
    const char *labels_rel = "data/imagenet-sample/imagenet_classes.txt";
    char weights[512], labels[512];
    /* test_shared_path answers in one static buffer: copy each answer. */
    const char *path = test_shared_path(weights_rel);
    snprintf(weights, sizeof weights, "%s", path ? path : "");
    path = test_shared_path(labels_rel);
    snprintf(labels, sizeof labels, "%s", path ? path : "");
    if (!weights[0] || !labels[0]) {
        printf("SKIP test_sched_image: $ENGINE_SHARED (default ../shared) has no %s or %s\n",
               weights_rel, labels_rel);
        return TEST_SKIP;
    }
    for (int i = 0; i < N_GOOD; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "data/imagenet-sample/images/%s", image_names[i]);
        const char *img = test_shared_path(rel);
        if (!img || !(bytes[i] = test_read_file(img, &n_bytes[i]))) {
            printf("SKIP test_sched_image: cannot read $ENGINE_SHARED/%s\n", rel);
            return TEST_SKIP;
        }
    }
    char tmpdir[] = "/tmp/test_sched_image.XXXXXX";
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(model_path, sizeof model_path, "%s/resnet18.eng", tmpdir);
    char err[256];
    if (convert_resnet("resnet18", labels, weights, model_path, err, sizeof err) != ENG_OK) {
        printf("test_sched_image: converting %s failed: %s\n", weights, err);
        rmdir(tmpdir);
        return 1;
    }
    Suite *su = suite_create("sched_image");
    TCase *tc = tcase_create("resnet18");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, batched_equals_single_and_corrupt_fails_alone);
    tcase_add_test(tc, texts_refused_by_image_model);
    suite_add_tcase(su, tc);
    int rc = test_run_suite(su);
    unlink(model_path);
    rmdir(tmpdir);
    for (int i = 0; i < N_GOOD; i++)
        free(bytes[i]);
    return rc;
}
