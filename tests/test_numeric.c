/* test_numeric.c: issue 10 defect 4's last part. One flipped exponent bit in
 * a LayerNorm gain gave `"logits":[null,null]` with exit 0: the weights were
 * finite, the outputs were not. Such an item now fails alone with
 * ENG_ERR_NUMERIC (outputs zero, label -1, a reason) instead of returning NaN
 * as a result. The model is the synthetic "tiny" one with its embedding
 * LayerNorm gain scaled to 3e38 (finite, but the normalised rows it scales
 * overflow to infinity); written with a valid checksum, as a converter bug
 * or a hostile but well-formed file would be. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "synthetic.h"
#include "testutil.h"
#include "writer.h"

static char dir[64], good_path[128], bad_path[128];

/* Copies the model at src to dst, scaling tensor `name` by k. */
static void copy_scaled(const char *src, const char *dst, const char *name, float k)
{
    eng__file f;
    char err[512];
    ck_assert_msg(eng__file_open(&f, src, err, sizeof err) == ENG_OK, "%s", err);
    eng__writer *w = eng__writer_new();
    for (uint32_t i = 0; i < f.n_tensors; i++) {
        const eng__file_tensor *t = &f.dir[i];
        void *data = malloc(t->nbytes);
        memcpy(data, eng__file_data(&f, t), t->nbytes);
        if (strcmp(t->name, name) == 0) {
            ck_assert_int_eq(t->dtype, ENG_DT_F32);
            for (uint64_t j = 0; j < t->nbytes / 4; j++)
                ((float *)data)[j] *= k;
        }
        ck_assert_int_eq(eng__writer_add(w, t->name, (eng__dtype)t->dtype, (int)t->ndim, t->shape,
                                         data), ENG_OK);
        free(data);
    }
    char *meta = strndup(f.meta, f.meta_size);
    ck_assert_msg(eng__writer_save(w, meta, dst, err, sizeof err) == ENG_OK, "%s", err);
    free(meta);
    eng__writer_free(w);
    eng__file_close(&f);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_numeric.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(good_path, sizeof good_path, "%s/tiny.eng", dir);
    snprintf(bad_path, sizeof bad_path, "%s/overflow.eng", dir);
    cv_synth_opts o = {1, 0, NULL};
    cv_config c;
    cv_report r;
    char err[512];
    ck_assert_msg(cv_synthetic("tiny", &o, good_path, &c, &r, err, sizeof err) == ENG_OK, "%s", err);
    cv_config_free(&c);
    copy_scaled(good_path, bad_path, "emb.ln.g", 3e38f);
}

static void teardown(void)
{
    unlink(good_path);
    unlink(bad_path);
    rmdir(dir);
}

static const char *const texts[2] = {"a good movie", "bad"};

/* Classifies texts with the model at path; returns the batch status. */
static eng_status classify(const char *path, float *logits, float *probs, int *labels,
                           eng_status *st, char *why, size_t whylen)
{
    eng_model *m;
    eng_ctx *c;
    ck_assert_msg(eng_model_load(path, NULL, &m) == ENG_OK, "%s", eng_last_error());
    ck_assert_msg(eng_ctx_init(m, NULL, &c) == ENG_OK, "%s", eng_last_error());
    eng_status s = eng_classify(c, texts, 2, logits, probs, labels, st);
    snprintf(why, whylen, "%s", eng_ctx_last_error(c));
    float emb[2 * 64];
    eng_status st2[2];
    eng_status se = eng_embed(c, texts, 2, emb, st2);
    ck_assert_int_eq(se, s);   /* the encoder's output is what overflowed */
    eng_ctx_free(c);
    eng_model_free(m);
    return s;
}

START_TEST(finite_model_classifies)
{
    float logits[4], probs[4];
    int labels[2];
    eng_status st[2];
    char why[512];
    ck_assert_int_eq(classify(good_path, logits, probs, labels, st, why, sizeof why), ENG_OK);
    for (int i = 0; i < 4; i++)
        ck_assert(isfinite(logits[i]));
    ck_assert_int_eq(st[0], ENG_OK);
    ck_assert_int_ge(labels[1], 0);
}
END_TEST

START_TEST(overflow_fails_each_item)
{
    float logits[4] = {1, 1, 1, 1}, probs[4] = {1, 1, 1, 1};
    int labels[2] = {7, 7};
    eng_status st[2];
    char why[512];
    ck_assert_int_eq(classify(bad_path, logits, probs, labels, st, why, sizeof why),
                     ENG_ERR_NUMERIC);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(st[i], ENG_ERR_NUMERIC);
        ck_assert_int_eq(labels[i], -1);
        ck_assert(logits[2 * i] == 0.0f && logits[2 * i + 1] == 0.0f);
        ck_assert(probs[2 * i] == 0.0f && probs[2 * i + 1] == 0.0f);
    }
    ck_assert_msg(strstr(why, "not finite") != NULL, "%s", why);
    ck_assert_str_eq(eng_status_str(ENG_ERR_NUMERIC), "result is not a finite number");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("numeric");
    TCase *tc = tcase_create("numeric");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, finite_model_classifies);
    tcase_add_test(tc, overflow_fails_each_item);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
