/* test_cli_image.c: build/engine classify on an image model, as a subprocess
 * (and build/convert refusing an empty --labels file):
 * every failed image of a batch gets its own reason (with the system's words
 * for open and read errors), results stay in input order across batches, and
 * a file name that is not UTF-8 still gives valid JSON. Needs the ResNet-18
 * checkpoint and the sample images of $ENGINE_SHARED; skips (77) without them. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

int main(void)
{
    /* Absolute paths: the engine runs in the temporary folder, so the
     * relative names it is given stay short and predictable. */
    char pth[PATH_MAX], good[PATH_MAX], convert[PATH_MAX], engine[PATH_MAX];
    const char *p = test_shared_path("models/resnet18-random/resnet18.pth");
    if (!p || !realpath(p, pth) ||
        !(p = test_shared_path("data/imagenet-sample/images/n01440764_tench.JPEG")) ||
        !realpath(p, good)) {
        printf("skip: $ENGINE_SHARED (../shared) lacks models/resnet18-random or imagenet-sample\n");
        return TEST_SKIP;
    }
    if (!realpath(test_build_path("convert"), convert) || !realpath(test_build_path("engine"), engine)) {
        printf("test_cli_image: build/convert and build/engine are not built (make builds them)\n");
        return 1;
    }
    char dir[] = "/tmp/test_cli_image_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char cmd[6 * PATH_MAX], out[600];
    /* An empty --labels file is refused, not taken for no labels. */
    snprintf(cmd, sizeof cmd, "cd %s && %s --arch resnet18 --labels /dev/null %s r18.eng 2>&1 | "
             "grep -q 'labels file /dev/null is empty' && test ! -e r18.eng", dir, convert, pth);
    int st = system(cmd);
    int failures = 0;
#define EXPECT(cond)                                                                       \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("test_cli_image: FAILED %s\n", #cond);                                 \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s --arch resnet18 %s r18.eng > /dev/null && echo notanimage > bad.jpg && "
             "%s classify --threads 2 r18.eng missing.jpg %s bad.jpg . \"$(printf 'x\\377.jpg')\" "
             "--batch 3 %s > out",
             dir, convert, pth, engine, good, good);
    st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *text = test_read_file(out, NULL);
    EXPECT(rc == 1); /* some items failed */
    EXPECT(text != NULL);
    if (text) {
        int n = 0;
        char **lines = test_split_lines(text, &n);
        EXPECT(n == 6);
        if (n == 6) {
            EXPECT(strstr(lines[0], "\"file\":\"missing.jpg\",\"error\":\"cannot open missing.jpg: "
                                    "No such file or directory\""));
            EXPECT(strstr(lines[1], "\"label\"") && strstr(lines[1], "\"top5\""));
            EXPECT(strstr(lines[2], "\"file\":\"bad.jpg\",\"error\":\"not a JPEG or PNG image\""));
            /* The second batch: its first failure and its later ones all keep
             * their own reasons. */
            EXPECT(strstr(lines[3], "\"error\":\"cannot read .: Is a directory\""));
            EXPECT(strstr(lines[4], "\"file\":\"x\\ufffd.jpg\",\"error\":\"cannot open x"));
            EXPECT(strstr(lines[4], "No such file or directory"));
            EXPECT(!strcmp(strchr(lines[5], ','), strchr(lines[1], ','))); /* same image, same result */
        }
        if (failures)
            for (int i = 0; i < n; i++)
                printf("output line %d: %.300s\n", i + 1, lines[i]);
        free(lines);
    }
    free(text);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("test_cli_image: could not remove %s\n", dir);
    printf("test_cli_image: %s\n", failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}
