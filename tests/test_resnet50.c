/* test_resnet50.c: torchvision's ResNet-50 (bottleneck blocks at full size)
 * against tests/golden/resnet50-seed0.logits.jsonl, made by
 * tests/golden/make_resnet50_golden.py from a seeded random checkpoint. The
 * checkpoint is too large for the repository: $ENGINE_RESNET50 names it, and
 * without it (or without $ENGINE_SHARED's images) the program skips (77). */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnn.h"
#include "cnn_testutil.h"
#include "image.h"
#include "resnet.h"
#include "team.h"
#include "testutil.h"

#define GOLDEN "tests/golden/resnet50-seed0.logits.jsonl"
#define GOLDEN_IMAGES 3
#define CLASSES 1000

static const char *checkpoint;
static char images_dir[4096];
static char model_path[64];

START_TEST(resnet50_matches_golden)
{
    char err[512];
    ck_assert_msg(convert_resnet("resnet50", NULL, checkpoint, model_path, err, sizeof err) ==
                      ENG_OK, "%s", err);
    eng__file f;
    eng__cnn *cnn;
    ck_assert_msg(eng__file_open(&f, model_path, err, sizeof err) == ENG_OK, "%s", err);
    ck_assert_msg(eng__cnn_init(&cnn, &f, err, sizeof err) == ENG_OK, "%s", err);
    ck_assert_int_eq(eng__cnn_num_classes(cnn), CLASSES);
    char *text = test_read_file(GOLDEN, NULL);
    ck_assert_msg(text != NULL, "run from the repository root");
    int nl;
    char **lines = test_split_lines(text, &nl);
    ck_assert_int_eq(nl, GOLDEN_IMAGES);
    eng__cnn_ctx *ctx;
    eng__team *team;
    ck_assert(eng__team_create(&team, 2) == ENG_OK);
    ck_assert(eng__cnn_ctx_init(cnn, 1, eng__team_size(team), &ctx, err, sizeof err) == ENG_OK);
    size_t in = eng__cnn_input_floats(cnn);
    float *img = malloc(sizeof(float) * in), got[CLASSES], ref[CLASSES];
    for (int i = 0; i < nl; i++) {
        cJSON *j = cJSON_Parse(lines[i]);
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(j, "file");
        const cJSON *lg = cJSON_GetObjectItemCaseSensitive(j, "logits");
        ck_assert(cJSON_IsString(file) && cJSON_GetArraySize(lg) == CLASSES);
        for (int k = 0; k < CLASSES; k++)
            ref[k] = (float)cJSON_GetArrayItem(lg, k)->valuedouble;
        char fp[8192];
        snprintf(fp, sizeof fp, "%s/%s", images_dir, file->valuestring);
        ck_assert_msg(eng__image_load(fp, eng__cnn_image_spec(cnn), img, err, sizeof err) ==
                          ENG_OK, "%s", err);
        eng__cnn_forward(ctx, team, img, 1, got);
        check_logits(file->valuestring, got, ref, CLASSES);
        cJSON_Delete(j);
    }
    eng__cnn_ctx_free(ctx);
    eng__team_free(team);
    eng__cnn_free(cnn);
    eng__file_close(&f);
    unlink(model_path);
    free(lines), free(text), free(img);
}
END_TEST

int main(void)
{
    checkpoint = getenv("ENGINE_RESNET50");
    const char *dir = test_shared_path("data/imagenet-sample/images");
    if (!checkpoint || access(checkpoint, R_OK) != 0 || !dir) {
        printf("SKIP test_resnet50: set ENGINE_RESNET50 to the checkpoint made by "
               "tests/golden/make_resnet50_golden.py (and have $ENGINE_SHARED's "
               "imagenet-sample)\n");
        return TEST_SKIP;
    }
    snprintf(images_dir, sizeof images_dir, "%s", dir);
    char tmpdir[] = "/tmp/test_resnet50.XXXXXX";
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(model_path, sizeof model_path, "%s/resnet50.eng", tmpdir);
    Suite *s = suite_create("resnet50");
    TCase *t = tcase_create("golden");
    tcase_set_timeout(t, 600);
    tcase_add_test(t, resnet50_matches_golden);
    suite_add_tcase(s, t);
    int rc = test_run_suite(s);
    rmdir(tmpdir);
    return rc;
}
