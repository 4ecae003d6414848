/* test_cli_vit.c: build/engine zero-shot and embed --images on the tiny CLIP
 * of tests/golden/tiny/clip, as subprocesses: zero-shot over the reference's
 * prompt ids picks the reference's label and a missing image fails alone
 * (exit 1); without --ids (no tokenizer.json in that folder) it fails once,
 * saying why (exit 4); on tests/golden/tiny/clip-tok (with one) label texts
 * give what their golden ids give; embed --images prints the image's features. Needs the sample
 * images of $ENGINE_SHARED; skips (77) without them. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

static int failures;
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("test_cli_vit: FAILED %s\n", #cond);                                            \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Runs cmd through the shell; its exit status, or -1. */
static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    char good[PATH_MAX], convert[PATH_MAX], engine[PATH_MAX], golden[PATH_MAX],
         tokjson[PATH_MAX];
    const char *p = test_shared_path("data/imagenet-sample/images/n01440764_tench.JPEG");
    if (!p || !realpath(p, good)) {
        printf("skip: $ENGINE_SHARED (../shared) lacks data/imagenet-sample\n");
        return TEST_SKIP;
    }
    if (!realpath(test_build_path("convert"), convert) ||
        !realpath(test_build_path("engine"), engine) ||
        !realpath("tests/golden/tiny/clip", golden) ||
        !realpath("tests/golden/tokjson", tokjson)) {
        printf("test_cli_vit: build/convert, build/engine or tests/golden missing\n");
        return 1;
    }
    char dir[] = "/tmp/test_cli_vit_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[12 * PATH_MAX], path[PATH_MAX + 32];
    /* The labels, and the reference's prompts as ids, one line each. */
    snprintf(
        cmd, sizeof cmd,
        "cd %s && %s %s clip.eng > /dev/null && printf 'empty\\ntwo\\nfive\\npadded\\nlong\\n' "
        "> labels.txt && python3 -c \"import json; [print(json.dumps(s)) for s in "
        "json.load(open('%s/expected.json'))['text_ids']]\" > ids.jsonl",
        dir, convert, golden, golden);
    EXPECT(run(cmd) == 0);

    snprintf(cmd, sizeof cmd,
             "cd %s && %s zero-shot clip.eng --labels labels.txt --ids ids.jsonl %s missing.jpg "
             "> out 2> err",
             dir, engine, good);
    EXPECT(run(cmd) == 1); /* the missing image failed alone */
    snprintf(path, sizeof path, "%s/out", dir);
    char *text = test_read_file(path, NULL);
    int n = 0;
    char **lines = text ? test_split_lines(text, &n) : NULL;
    EXPECT(n == 2);
    /* The reference's logits_per_image for the tench pick "two" (index 1). */
    EXPECT(n >= 1 && strstr(lines[0], "\"label\":\"two\",") && strstr(lines[0], "\"top5\":[") &&
           strstr(lines[0], "\"probs\":["));
    EXPECT(n >= 2 && strstr(lines[1], "\"file\":\"missing.jpg\",\"error\":\"cannot open"));
    free(lines);
    free(text);

    snprintf(cmd, sizeof cmd,
             "cd %s && %s zero-shot clip.eng --labels labels.txt %s > out 2> err; test $? = 4 && "
             "grep -q 'tokenizer' err && test ! -s out",
             dir, engine, good);
    EXPECT(run(cmd) == 0);

    /* The tiny CLIP with a tokenizer.json (make_clip_tok.py): label texts
     * tokenized by the model give what their golden ids give (the npm
     * tokenizers' ids, truncated to the 16 positions as HF does). */
    snprintf(cmd, sizeof cmd,
             "cd %s && %s %s-tok tok.eng > /dev/null && sed -n 1,5p %s/texts.txt > tlabels.txt && "
             "python3 -c \"import json; [print(json.dumps(s[:15] + s[-1:] if len(s) > 16 else s)) "
             "for s in (json.loads(l)[0] for l in list(open('%s/clip-like/golden.jsonl'))[:5])]\" "
             "> tids.jsonl && %s zero-shot tok.eng --labels tlabels.txt --template '{}' %s > a && "
             "%s zero-shot tok.eng --labels tlabels.txt --template '{}' --ids tids.jsonl %s > b && "
             "grep -q '\"top5\":' a && cmp a b",
             dir, convert, golden, tokjson, tokjson, engine, good, engine, good);
    EXPECT(run(cmd) == 0);

    snprintf(cmd, sizeof cmd, "cd %s && %s embed clip.eng --images %s > out", dir, engine, good);
    EXPECT(run(cmd) == 0);
    text = test_read_file(path, NULL);
    EXPECT(text && !strncmp(text, "{\"file\":", 8) && strstr(text, "\"embedding\":[0.9006"));
    free(text);

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run(cmd);
    if (failures)
        return 1;
    printf("test_cli_vit: passed\n");
    return 0;
}
