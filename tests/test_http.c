/* test_http.c: `engine serve` end to end. Starts the real server
 * (build/engine serve) on a free loopback port with the converted
 * sst2-bert-mini model and the null model, and talks HTTP to it with a small
 * socket client: every route, the status codes, TEI response shapes, results
 * equal to the library's, the cache, overload, deadlines, slow clients,
 * client disconnects, the early 413, and the drain. Servers are stopped by
 * pid. Skips (77) when the model or the engine binary is missing. */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "testutil.h"

static char engine_bin[4096], model_path[4096];

typedef struct {
    pid_t pid;
    int port;
    char log[64];
} server;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Starts build/engine serve with args (NULL-terminated) on port 0 and waits
 * until its log says ready; the port comes from its "listening on" line.
 * Port 0 when it failed (said on stderr); runs outside tests too, so no
 * Check assertions. */
static server start_server(const char *const *args)
{
    server s = {0};
    snprintf(s.log, sizeof s.log, "/tmp/test_http.%d.XXXXXX", (int)getpid());
    int fd = mkstemp(s.log);
    if (fd < 0)
        return s;
    const char *argv[64];
    int n = 0;
    argv[n++] = engine_bin;
    argv[n++] = "serve";
    for (; *args; args++)
        argv[n++] = *args;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n] = NULL;
    s.pid = fork();
    if (s.pid < 0)
        return s;
    if (s.pid == 0) {
        dup2(fd, 2);
        execv(engine_bin, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    for (int i = 0; i < 600; i++) {
        char *text = test_read_file(s.log, NULL);
        const char *l = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
        if (l)
            s.port = atoi(l + strlen("listening on http://127.0.0.1:"));
        int ready = text && strstr(text, "engine serve: ready");
        free(text);
        if (ready && s.port > 0)
            return s;
        sleep_ms(50);
    }
    fprintf(stderr, "the server did not get ready (log in %s)\n", s.log);
    s.port = 0;
    return s;
}

static int stop_server(server *s)
{
    kill(s->pid, SIGTERM);
    int st = 0;
    waitpid(s->pid, &st, 0);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    char *log = rc ? test_read_file(s->log, NULL) : NULL;
    if (log)
        fprintf(stderr, "server exited %d, its log:\n%.3000s\n", rc, log);
    free(log);
    unlink(s->log);
    return rc;
}

/* Waits for a server told to stop; it must exit 0 (its log is shown if not). */
static void expect_exit_0(server *s)
{
    int st = 0;
    waitpid(s->pid, &st, 0);
    char *log = test_read_file(s->log, NULL);
    unlink(s->log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server exit status %#x, its log:\n%.3000s", st,
                  log ? log : "");
    free(log);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

typedef struct {
    int status;
    char head[4096];
    char *body;
} reply;

/* Reads an answer until the server closes (requests say Connection: close). */
static reply read_reply(int fd)
{
    reply r = {0};
    size_t cap = 1 << 16, len = 0;
    char *all = malloc(cap);
    ssize_t got;
    while ((got = recv(fd, all + len, cap - len - 1, 0)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap)
            all = realloc(all, cap *= 2);
    }
    all[len] = '\0';
    char *sep = strstr(all, "\r\n\r\n");
    if (sep && sscanf(all, "HTTP/1.1 %d", &r.status) == 1) {
        snprintf(r.head, sizeof r.head, "%.*s", (int)(sep - all), all);
        r.body = strdup(sep + 4);
    } else {
        r.body = strdup("");
    }
    free(all);
    return r;
}

static reply http(int port, const char *method, const char *path, const char *headers,
                  const char *body)
{
    int fd = connect_to(port);
    ck_assert_int_ge(fd, 0);
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
                     method, path, headers ? headers : "", body ? strlen(body) : 0);
    send_all(fd, head, (size_t)n);
    if (body)
        send_all(fd, body, strlen(body));
    reply r = read_reply(fd);
    close(fd);
    return r;
}

static reply post(int port, const char *path, const char *body)
{
    return http(port, "POST", path, "Content-Type: application/json\r\n", body);
}

static void expect_error(reply r, int status, const char *type)
{
    ck_assert_msg(r.status == status, "status %d, want %d: %s", r.status, status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_msg(j != NULL, "error body is not JSON: %s", r.body);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(j, "error")));
    cJSON *t = cJSON_GetObjectItem(j, "error_type");
    ck_assert_msg(cJSON_IsString(t) && !strcmp(t->valuestring, type), "error_type: %s", r.body);
    cJSON_Delete(j);
    free(r.body);
}

static server main_srv;

START_TEST(tei_routes)
{
    int port = main_srv.port;
    reply r = post(port, "/embed", "{\"inputs\":\"hello world\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert(strstr(r.head, "x-request-id: ") && strstr(r.head, "x-total-time: ") &&
              strstr(r.head, "x-queue-time: ") && strstr(r.head, "x-inference-time: ") &&
              strstr(r.head, "x-tokenization-time: "));
    cJSON *j = cJSON_Parse(r.body);
    /* TEI: /embed always answers [[f32...]], here L2-normalised (normalize defaults to true). */
    ck_assert(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1);
    cJSON *e = cJSON_GetArrayItem(j, 0);
    ck_assert_int_eq(cJSON_GetArraySize(e), 256);
    double ss = 0;
    for (int i = 0; i < 256; i++)
        ss += cJSON_GetArrayItem(e, i)->valuedouble * cJSON_GetArrayItem(e, i)->valuedouble;
    ck_assert_double_eq_tol(ss, 1.0, 1e-5);   /* float rounding of 256 terms */
    cJSON_Delete(j);
    free(r.body);

    r = post(port, "/predict", "{\"inputs\":\"a charming and moving film\"}");
    ck_assert_int_eq(r.status, 200);
    j = cJSON_Parse(r.body);   /* [{"label","score"}...] sorted by score */
    ck_assert_int_eq(cJSON_GetArraySize(j), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "label")->valuestring, "POSITIVE");
    ck_assert(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "score")->valuedouble >=
              cJSON_GetObjectItem(cJSON_GetArrayItem(j, 1), "score")->valuedouble);
    cJSON_Delete(j);
    free(r.body);

    r = post(port, "/predict", "{\"inputs\":[\"good\",\"bad\"],\"raw_scores\":true}");
    ck_assert_int_eq(r.status, 200);
    j = cJSON_Parse(r.body);   /* a batch: a list of lists */
    ck_assert(cJSON_IsArray(cJSON_GetArrayItem(j, 1)));
    cJSON_Delete(j);
    free(r.body);

    /* As TEI: byte offsets into the text and the text's own bytes there
     * ("Héllo", not the vocabulary's "hello"); null for [CLS]/[SEP]. Ids and
     * offsets are Hugging Face's tokenizers' for this text (through
     * tests/golden/make_tokenizer_spans.mjs). */
    r = post(port, "/tokenize", "{\"inputs\":\"Héllo, unaffable 中文\"}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body,
                     "[[{\"id\":101,\"text\":\"[CLS]\",\"special\":true,\"start\":null,\"stop\":null},"
                     "{\"id\":7592,\"text\":\"Héllo\",\"special\":false,\"start\":0,\"stop\":6},"
                     "{\"id\":1010,\"text\":\",\",\"special\":false,\"start\":6,\"stop\":7},"
                     "{\"id\":14477,\"text\":\"una\",\"special\":false,\"start\":8,\"stop\":11},"
                     "{\"id\":20961,\"text\":\"ffa\",\"special\":false,\"start\":11,\"stop\":14},"
                     "{\"id\":3468,\"text\":\"ble\",\"special\":false,\"start\":14,\"stop\":17},"
                     "{\"id\":1746,\"text\":\"中\",\"special\":false,\"start\":18,\"stop\":21},"
                     "{\"id\":1861,\"text\":\"文\",\"special\":false,\"start\":21,\"stop\":24},"
                     "{\"id\":102,\"text\":\"[SEP]\",\"special\":true,\"start\":null,\"stop\":null}]]");
    free(r.body);

    r = post(port, "/v1/embeddings", "{\"input\":[\"hi\",\"there\"],\"model\":\"whatever\"}");
    ck_assert_int_eq(r.status, 200);
    j = cJSON_Parse(r.body);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "object")->valuestring, "list");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 2);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 1),
                                         "index")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "prompt_tokens")->valueint, 6);
    cJSON_Delete(j);
    free(r.body);

    r = http(port, "GET", "/info", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    j = cJSON_Parse(r.body);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "model_id")->valuestring, "sst2-bert-mini");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "max_input_length")->valueint, 512);
    cJSON_Delete(j);
    free(r.body);
    for (int i = 0; i < 3; i++) {
        static const char *const p[] = {"/health", "/v2/health/live", "/v2/health/ready"};
        r = http(port, "GET", p[i], NULL, NULL);
        ck_assert_int_eq(r.status, 200);
        free(r.body);
    }
}
END_TEST

/* The server's answers equal the library's for the same texts. */
START_TEST(kserve_equals_library)
{
    const char *texts[2] = {"a charming journey", "bleak and desperate"};
    eng_model *m;
    ck_assert_int_eq(eng_model_load(model_path, NULL, &m), ENG_OK);
    eng_ctx *ctx;
    ck_assert_int_eq(eng_ctx_init(m, NULL, &ctx), ENG_OK);
    float logits[4];
    ck_assert_int_eq(eng_classify(ctx, texts, 2, logits, NULL, NULL, NULL), ENG_OK);
    reply r = post(main_srv.port, "/v2/models/sst2-bert-mini/infer",
                   "{\"id\":\"q1\",\"inputs\":[{\"name\":\"text\",\"shape\":[2],\"datatype\":\"BYTES\","
                   "\"data\":[\"a charming journey\",\"bleak and desperate\"]}]}");
    ck_assert_int_eq(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, "q1");
    cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(out, "name")->valuestring, "logits");
    cJSON *data = cJSON_GetObjectItem(out, "data");
    /* %.9g round-trips a float, and a text's result does not depend on its batch. */
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq((float)cJSON_GetArrayItem(data, i)->valuedouble, logits[i]);
    cJSON *label = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 1);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(label, "data"), 0)->valuestring, "POSITIVE");
    cJSON_Delete(j);
    free(r.body);
    r = http(main_srv.port, "GET", "/v2/models/sst2-bert-mini", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert(strstr(r.body, "\"name\":\"sst2-bert-mini\""));
    free(r.body);
    r = http(main_srv.port, "GET", "/v2/models/null/ready", NULL, NULL);
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    eng_ctx_free(ctx);
    eng_model_free(m);
}
END_TEST

START_TEST(status_codes)
{
    int port = main_srv.port;
    expect_error(post(port, "/embed", "{\"inputs\": [\"x\""), 400, "validation");
    expect_error(http(port, "GET", "/nope", NULL, NULL), 404, "not_found");
    expect_error(http(port, "GET", "/v2/models/nope", NULL, NULL), 404, "not_found");
    expect_error(post(port, "/predict?model=nope", "{\"inputs\":\"x\"}"), 404, "not_found");
    expect_error(http(port, "GET", "/embed", NULL, NULL), 405, "method_not_allowed");
    expect_error(post(port, "/embed", "{\"inputs\":[]}"), 422, "empty");
    expect_error(post(port, "/embed", "{\"inputs\":42}"), 422, "validation");
    expect_error(post(port, "/embed", "{\"inputs\":\"x\",\"normalize\":\"yes\"}"), 422, "validation");
    expect_error(post(port, "/embed", "{\"inputs\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}"),
                 422, "validation");
    /* Invalid UTF-8 in the second input: the error names index 1. */
    reply r = post(port, "/embed", "{\"inputs\":[\"fine\",\"bad \xC3\x28\"]}");
    ck_assert_int_eq(r.status, 422);
    ck_assert_msg(strstr(r.body, "input 1"), "%s", r.body);
    free(r.body);
    /* A declared body over the limit is refused before it is read. */
    r = http(port, "POST", "/embed", "Content-Length: 999999999\r\n", NULL);
    ck_assert_int_eq(r.status, 413);
    free(r.body);
}
END_TEST

/* A chunked body gets its 413 as soon as it crosses the limit, while the
 * client is still sending. */
START_TEST(chunked_413_early)
{
    int fd = connect_to(main_srv.port);
    const char *head = "POST /embed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_all(fd, head, strlen(head));
    char chunk[8192 + 16];
    int n = snprintf(chunk, sizeof chunk, "2000\r\n");
    memset(chunk + n, 'a', 8192);
    memcpy(chunk + n + 8192, "\r\n", 2);
    /* 20 chunks of 8 KiB cross the 100 kB limit; the client never ends the body. */
    for (int i = 0; i < 20; i++)
        send_all(fd, chunk, (size_t)n + 8194);
    reply r = read_reply(fd);
    close(fd);
    ck_assert_int_eq(r.status, 413);
    ck_assert(strstr(r.body, "payload_too_large"));
    free(r.body);
}
END_TEST

START_TEST(cache_hit_equals_miss)
{
    const char *body = "{\"inputs\":[\"the cache test sentence\",\"another one\"]}";
    reply a = post(main_srv.port, "/embed", body);
    reply b = post(main_srv.port, "/embed", body);
    ck_assert_int_eq(a.status, 200);
    ck_assert_int_eq(b.status, 200);
    ck_assert_str_eq(a.body, b.body);
    free(a.body);
    free(b.body);
    reply m = http(main_srv.port, "GET", "/metrics", NULL, NULL);
    ck_assert(strstr(m.body, "engine_cache_hits_total{model=\"sst2-bert-mini\"} ") != NULL);
    const char *h = strstr(m.body, "engine_cache_hits_total{model=\"sst2-bert-mini\"} ");
    ck_assert_int_ge(atoi(h + strlen("engine_cache_hits_total{model=\"sst2-bert-mini\"} ")), 2);
    free(m.body);
}
END_TEST

/* The metrics page parses (promtool when installed, else line syntax). */
START_TEST(metrics_parse)
{
    reply m = http(main_srv.port, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(m.status, 200);
    ck_assert(strstr(m.body, "# TYPE engine_request_queue_duration_seconds histogram"));
    ck_assert(strstr(m.body, "engine_ready 1"));
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/test_http_metrics.XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert(write(fd, m.body, strlen(m.body)) == (ssize_t)strlen(m.body));
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
        int rc = system(cmd);
        unlink(path);
        ck_assert_msg(rc == 0, "promtool check metrics failed");
    }
    free(m.body);
}
END_TEST

START_TEST(slow_client_cut_off)
{
    /* --idle-timeout 1: a client that stalls mid-header is disconnected. */
    int fd = connect_to(main_srv.port);
    send_all(fd, "POST /embed HTTP/1.1\r\nHo", 24);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char c;
    ssize_t got = recv(fd, &c, 1, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    ck_assert_int_le(got, 0);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(s > 0.5 && s < 5, "cut off after %.2f s", s);
}
END_TEST

static server slow_srv;
typedef struct {
    int port, status;
    const char *path, *headers, *body;
    struct timespec done;   /* when the answer arrived */
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    reply r = http(j->port, "POST", j->path, j->headers, j->body);
    j->status = r.status;
    clock_gettime(CLOCK_MONOTONIC, &j->done);
    free(r.body);
    return NULL;
}

/* A tiny queue and many concurrent clients: some 429, every one answered. */
START_TEST(overload_429)
{
    enum { N = 24 };
    job jobs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (job){slow_srv.port, 0, "/predict", "", "{\"inputs\":\"a b\"}", {0, 0}};
        pthread_create(&t[i], NULL, run_job, &jobs[i]);
    }
    int ok = 0, over = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ok += jobs[i].status == 200;
        over += jobs[i].status == 429;
    }
    ck_assert_int_eq(ok + over, N);
    ck_assert_int_gt(over, 0);
    ck_assert_int_gt(ok, 0);
}
END_TEST

/* A deadline that passes while queued behind slow batches: 504. A client that
 * leaves while queued costs nothing else: the server keeps answering. */
START_TEST(deadline_504_and_disconnect)
{
    job busy = {slow_srv.port, 0, "/predict", "", "{\"inputs\":\"a b\"}", {0, 0}};
    pthread_t t;
    pthread_create(&t, NULL, run_job, &busy);
    sleep_ms(20);
    /* Leaves while queued. */
    int fd = connect_to(slow_srv.port);
    const char *req = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n{\"inputs\":\"a b\"}";
    send_all(fd, req, strlen(req));
    close(fd);
    reply r = http(slow_srv.port, "POST", "/predict", "X-Request-Timeout-Ms: 5\r\n",
                   "{\"inputs\":\"a b\"}");
    pthread_join(t, NULL);
    ck_assert_int_eq(busy.status, 200);
    expect_error(r, 504, "timeout");
    r = http(slow_srv.port, "POST", "/predict", "", "{\"inputs\":\"a b\"}");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    /* A deadline 317 years off (10^13 ms) is none: it overflowed into the
     * past (an immediate 504) before the fuzzer's UBSan found it. */
    r = http(slow_srv.port, "POST", "/predict", "X-Request-Timeout-Ms: 10000000000000\r\n",
             "{\"inputs\":\"a b\"}");
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    free(r.body);
}
END_TEST

static int answered_before(const job *a, const job *b)
{
    return a->done.tv_sec < b->done.tv_sec ||
           (a->done.tv_sec == b->done.tv_sec && a->done.tv_nsec < b->done.tv_nsec);
}

/* Priorities reach the scheduler: batches of one that take 200 ms each, one
 * running, three X-Priority 3 requests queued, then one X-Priority 0 (the
 * most urgent) and one KServe parameters.priority 0: both overtake the queued
 * ones (submitted last, they would finish last without priorities). Invalid
 * priorities are refused with 422 before they are queued. */
START_TEST(priority_overtakes)
{
    const char *args[] = {"--model", "null", "--null-batch-us", "200000", "--max-batch-size", "1",
                          "--max-queue", "16", NULL};
    server s = start_server(args);
    ck_assert_int_gt(s.port, 0);
    const char *low = "X-Priority: 3\r\n", *embed = "{\"inputs\":\"x\"}";
    const char *infer = "{\"parameters\":{\"priority\":0},\"inputs\":[{\"name\":\"text\","
                        "\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"x\"]}]}";
    enum { N = 6 };
    job jobs[N] = {
        {s.port, 0, "/embed", low, embed, {0, 0}},   /* runs first, alone */
        {s.port, 0, "/embed", low, embed, {0, 0}},
        {s.port, 0, "/embed", low, embed, {0, 0}},
        {s.port, 0, "/embed", low, embed, {0, 0}},
        {s.port, 0, "/embed", "X-Priority: 0\r\n", embed, {0, 0}},
        {s.port, 0, "/v2/models/null/infer", "", infer, {0, 0}},
    };
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        pthread_create(&t[i], NULL, run_job, &jobs[i]);
        sleep_ms(i == 0 ? 50 : 20);   /* queued in this order */
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(jobs[i].status, 200);
    }
    for (int urgent = 4; urgent < N; urgent++)
        for (int i = 1; i <= 3; i++)
            ck_assert_msg(answered_before(&jobs[urgent], &jobs[i]),
                          "priority-0 request %d answered after queued priority-3 request %d",
                          urgent, i);

    expect_error(http(s.port, "POST", "/embed", "X-Priority: 4\r\n", embed), 422, "validation");
    expect_error(http(s.port, "POST", "/embed", "X-Priority: -1\r\n", embed), 422, "validation");
    expect_error(http(s.port, "POST", "/embed", "X-Priority: high\r\n", embed), 422, "validation");
    const char *bad[] = {"4", "\"0\"", "1.5", "-1"};
    for (int i = 0; i < 4; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"parameters\":{\"priority\":%s},\"inputs\":[{\"name\":\"text\","
                 "\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"x\"]}]}", bad[i]);
        expect_error(post(s.port, "/v2/models/null/infer", body), 422, "validation");
    }
    ck_assert_int_eq(stop_server(&s), 0);
}
END_TEST

START_TEST(api_key_401)
{
    const char *args[] = {"--model", "null", "--api-key", "s3cret", NULL};
    server s = start_server(args);
    ck_assert_int_gt(s.port, 0);
    expect_error(post(s.port, "/embed", "{\"inputs\":\"x\"}"), 401, "unauthorized");
    expect_error(http(s.port, "POST", "/embed", "Authorization: Bearer nope\r\n", "{\"inputs\":\"x\"}"),
                 401, "unauthorized");
    reply r = http(s.port, "POST", "/embed", "Authorization: Bearer s3cret\r\n", "{\"inputs\":\"x\"}");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    r = http(s.port, "GET", "/v2/health/ready", NULL, NULL);   /* probes need no key */
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ck_assert_int_eq(stop_server(&s), 0);
}
END_TEST

/* 64 requests in flight, SIGTERM: all 64 answered 200, new connections
 * refused, exit 0. */
START_TEST(drain)
{
    const char *args[] = {"--model", "null", "--null-batch-us", "300000", "--max-batch-size", "64",
                          "--max-wait-us", "100000", NULL};
    server s = start_server(args);
    ck_assert_int_gt(s.port, 0);
    enum { N = 64 };
    job jobs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (job){s.port, 0, "/embed", "", "{\"inputs\":\"drain me\"}", {0, 0}};
        pthread_create(&t[i], NULL, run_job, &jobs[i]);
    }
    sleep_ms(150);   /* all connected and queued: the batch takes 300 ms */
    kill(s.pid, SIGTERM);
    sleep_ms(50);
    int fd = connect_to(s.port);
    ck_assert_int_lt(fd, 0);   /* refused */
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(jobs[i].status, 200);
    }
    expect_exit_0(&s);
}
END_TEST


/* What is still waiting at --exit-timeout is answered 503; the process still
 * exits 0. */
START_TEST(exit_timeout_503)
{
    const char *args[] = {"--model", "null", "--null-batch-us", "1000000", "--max-batch-size", "1",
                          "--exit-timeout", "0.2", NULL};
    server s = start_server(args);
    ck_assert_int_gt(s.port, 0);
    enum { N = 3 };
    job jobs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (job){s.port, 0, "/embed", "", "{\"inputs\":\"slow\"}", {0, 0}};
        pthread_create(&t[i], NULL, run_job, &jobs[i]);
    }
    sleep_ms(150);
    kill(s.pid, SIGTERM);
    int unavailable = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(jobs[i].status == 200 || jobs[i].status == 503, "status %d", jobs[i].status);
        unavailable += jobs[i].status == 503;
    }
    ck_assert_int_ge(unavailable, 2);   /* one batch of one ran at most */
    expect_exit_0(&s);
}
END_TEST

/* Connections beyond --max-connections are answered 503, not dropped. */
START_TEST(max_connections_503)
{
    const char *args[] = {"--model", "null", "--max-connections", "2", NULL};
    server s = start_server(args);
    ck_assert_int_gt(s.port, 0);
    int idle[3];
    for (int i = 0; i < 3; i++)
        idle[i] = connect_to(s.port);
    sleep_ms(100);   /* accepted and counted */
    expect_error(post(s.port, "/embed", "{\"inputs\":\"x\"}"), 503, "unhealthy");
    for (int i = 0; i < 3; i++)
        close(idle[i]);
    sleep_ms(100);
    reply r = post(s.port, "/embed", "{\"inputs\":\"x\"}");
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ck_assert_int_eq(stop_server(&s), 0);
}
END_TEST

/* An image model: raw JPEG posts (/classify, /predict?model=) and base64 in
 * KServe infer, answered with the library's logits; text routes on it are
 * 422, and an image that does not decode is 422. */
/* Standard base64 of data[0..len) into out (4 ceil(len / 3) bytes); returns
 * how many it wrote. */
static int b64_encode(const char *data, size_t len, char *out)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)data[i] << 16;
        if (i + 1 < len) v |= (uint32_t)(unsigned char)data[i + 1] << 8;
        if (i + 2 < len) v |= (unsigned char)data[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
    return o;
}

START_TEST(image_routes)
{
    char pth[4096], cls[4096], img[4096], eng[256], cmd[16384];
    const char *p = test_shared_path("models/resnet18-random/resnet18.pth");
    snprintf(pth, sizeof pth, "%s", p ? p : "");
    p = test_shared_path("data/imagenet-sample/images/n01440764_tench.JPEG");
    snprintf(img, sizeof img, "%s", p ? p : "");
    p = test_shared_path("data/imagenet-sample/imagenet_classes.txt");
    snprintf(cls, sizeof cls, "%s", p ? p : "");
    if (!pth[0] || !img[0] || !cls[0]) {
        printf("SKIP image_routes: resnet18-random or imagenet-sample absent from $ENGINE_SHARED\n");
        return;
    }
    snprintf(eng, sizeof eng, "/tmp/test_http_resnet18.%d.eng", (int)getpid());
    char convert[4096];
    snprintf(convert, sizeof convert, "%s", test_build_path("convert"));
    snprintf(cmd, sizeof cmd, "%s --arch resnet18 --labels %s %s %s >/dev/null", convert, cls, pth, eng);
    ck_assert_int_eq(system(cmd), 0);
    size_t len;
    char *jpeg = test_read_file(img, &len);
    ck_assert_ptr_nonnull(jpeg);

    eng_model *m;
    ck_assert_int_eq(eng_model_load(eng, NULL, &m), ENG_OK);
    eng_ctx *ctx;
    ck_assert_int_eq(eng_ctx_init(m, NULL, &ctx), ENG_OK);
    float logits[1000];
    const void *data[1] = {jpeg};
    ck_assert_int_eq(eng_classify_image_data(ctx, data, &len, 1, logits, NULL, NULL, NULL), ENG_OK);

    const char *args[] = {eng, NULL};
    server srv = start_server(args);
    ck_assert_int_gt(srv.port, 0);
    char path[256];
    snprintf(path, sizeof path, "/v2/models/test_http_resnet18.%d/classify", (int)getpid());
    for (int route = 0; route < 2; route++) {
        int fd = connect_to(srv.port);
        char head[512];
        int n = snprintf(head, sizeof head,
                         "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/jpeg\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         route ? "/predict" : path, len);
        send_all(fd, head, (size_t)n);
        send_all(fd, jpeg, len);
        reply r = read_reply(fd);
        close(fd);
        ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
        cJSON *j = cJSON_Parse(r.body);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "top5")), 5);
        cJSON *lg = cJSON_GetObjectItem(j, "logits");
        ck_assert_int_eq(cJSON_GetArraySize(lg), 1000);
        for (int i = 0; i < 1000; i++)   /* %.9g round-trips: exactly the library's */
            ck_assert_float_eq((float)cJSON_GetArrayItem(lg, i)->valuedouble, logits[i]);
        cJSON_Delete(j);
        free(r.body);
    }
    /* KServe infer with the image in base64. */
    char *body = malloc(len * 2 + 512);
    int o = snprintf(body, 512, "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"");
    o += b64_encode(jpeg, len, body + o);
    snprintf(body + o, 16, "\"]}]}");
    snprintf(path, sizeof path, "/v2/models/test_http_resnet18.%d/infer", (int)getpid());
    reply r = post(srv.port, path, body);
    free(body);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    cJSON *d = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 0), "data");
    for (int i = 0; i < 1000; i++)
        ck_assert_float_eq((float)cJSON_GetArrayItem(d, i)->valuedouble, logits[i]);
    int best = 0;
    for (int i = 1; i < 1000; i++)
        if (logits[i] > logits[best])
            best = i;
    cJSON *label = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "outputs"), 1);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(label, "data"), 0)->valuestring,
                     eng_model_label(m, best));
    cJSON_Delete(j);
    free(r.body);
    /* A text route on an image model; an image that does not decode. */
    expect_error(post(srv.port, "/embed", "{\"inputs\":\"x\"}"), 422, "validation");
    snprintf(path, sizeof path, "/v2/models/test_http_resnet18.%d/classify", (int)getpid());
    expect_error(http(srv.port, "POST", path, "Content-Type: image/jpeg\r\n", "not a jpeg"), 422,
                 "validation");
    ck_assert_int_eq(stop_server(&srv), 0);
    eng_ctx_free(ctx);
    eng_model_free(m);
    free(jpeg);
    unlink(eng);
}
END_TEST

/* POST /v2/models/{name}/zero-shot on the tiny CLIP of tests/golden/tiny:
 * the probabilities are the library's, number for number; labels without
 * prompt ids need the tokenizer (422, saying so); a text model has no
 * zero-shot (422). */
START_TEST(zero_shot_route)
{
    char img[4096], eng[256], cmd[8192];
    const char *p = test_shared_path("data/imagenet-sample/images/n01440764_tench.JPEG");
    snprintf(img, sizeof img, "%s", p ? p : "");
    if (!img[0]) {
        printf("SKIP zero_shot_route: imagenet-sample absent from $ENGINE_SHARED\n");
        return;
    }
    snprintf(eng, sizeof eng, "/tmp/test_http_clip.%d.eng", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s tests/golden/tiny/clip %s >/dev/null", test_build_path("convert"),
             eng);
    ck_assert_int_eq(system(cmd), 0);
    size_t len;
    char *jpeg = test_read_file(img, &len);
    ck_assert_ptr_nonnull(jpeg);
    /* The prompts: two of the reference's id lists. */
    static const int32_t ids0[] = {62, 63}, ids1[] = {62, 5, 9, 63};
    const eng_seq seqs[2] = {{ids0, 2}, {ids1, 4}};
    const char *labels[2] = {"empty", "two"};
    eng_label_set ls = {labels, 2, NULL, seqs};
    eng_model *m;
    ck_assert_int_eq(eng_model_load(eng, NULL, &m), ENG_OK);
    eng_ctx *ctx;
    ck_assert_int_eq(eng_ctx_init(m, NULL, &ctx), ENG_OK);
    float want[2];
    const void *data[1] = {jpeg};
    ck_assert_int_eq(eng_zero_shot_image_data(ctx, &ls, data, &len, 1, want, NULL, NULL), ENG_OK);

    const char *args[] = {eng, NULL};
    server srv = start_server(args);
    ck_assert_int_gt(srv.port, 0);
    char path[256];
    snprintf(path, sizeof path, "/v2/models/test_http_clip.%d/zero-shot", (int)getpid());
    char *body = malloc(len * 2 + 512);
    int o = snprintf(body, 64, "{\"inputs\":[\"");
    o += b64_encode(jpeg, len, body + o);
    snprintf(body + o, 256, "\"],\"labels\":[\"empty\",\"two\"],\"label_ids\":[[62,63],[62,5,9,63]]}");
    reply r = post(srv.port, path, body);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    cJSON *first = cJSON_GetArrayItem(j, 0), *probs = cJSON_GetObjectItem(first, "probs");
    ck_assert_int_eq(cJSON_GetArraySize(j), 1);
    for (int i = 0; i < 2; i++)   /* %.9g round-trips: exactly the library's */
        ck_assert_float_eq((float)cJSON_GetArrayItem(probs, i)->valuedouble, want[i]);
    ck_assert_str_eq(cJSON_GetObjectItem(first, "label")->valuestring,
                     labels[want[1] > want[0]]);
    cJSON_Delete(j);
    free(r.body);
    /* Without ids the prompts need the tokenizer. */
    snprintf(body + o, 256, "\"],\"labels\":[\"empty\",\"two\"]}");
    r = post(srv.port, path, body);
    ck_assert_msg(r.status == 422 && strstr(r.body, "tokenizer"), "%d %s", r.status, r.body);
    free(r.body);
    /* Both label sets were new to the server's model. */
    r = http(srv.port, "GET", "/metrics", "", NULL);
    char want_line[256];
    snprintf(want_line, sizeof want_line,
             "engine_zero_shot_label_sets_total{model=\"test_http_clip.%d\",result=\"miss\"} 2\n",
             (int)getpid());
    ck_assert_msg(r.status == 200 && strstr(r.body, want_line), "%d %s", r.status, r.body);
    free(r.body);
    ck_assert_int_eq(stop_server(&srv), 0);
    /* A text model has no zero-shot. */
    expect_error(post(main_srv.port, "/v2/models/sst2-bert-mini/zero-shot",
                      "{\"inputs\":[\"eA==\"],\"labels\":[\"a\"]}"),
                 422, "validation");
    free(body);
    eng_ctx_free(ctx);
    eng_model_free(m);
    free(jpeg);
    unlink(eng);
}
END_TEST

int main(void)
{
    snprintf(engine_bin, sizeof engine_bin, "%s", test_build_path("engine"));
    snprintf(model_path, sizeof model_path, "%s", test_build_path("models/sst2-bert-mini.eng"));
    if (access(engine_bin, X_OK) || access(model_path, R_OK)) {
        printf("skip: needs %s and %s (make models with ../shared)\n", engine_bin, model_path);
        return TEST_SKIP;
    }
    const char *main_args[] = {model_path, "--model", "null", "--max-client-batch-size", "8",
                               "--payload-limit", "100000", "--cache-entries", "1000",
                               "--idle-timeout", "1", NULL};
    const char *slow_args[] = {"--model", "null", "--null-batch-us", "100000", "--max-batch-size",
                               "1", "--max-queue", "2", NULL};
    main_srv = start_server(main_args);
    slow_srv = start_server(slow_args);
    if (main_srv.port == 0 || slow_srv.port == 0)
        return 1;
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tei_routes);
    tcase_add_test(tc, kserve_equals_library);
    tcase_add_test(tc, status_codes);
    tcase_add_test(tc, chunked_413_early);
    tcase_add_test(tc, cache_hit_equals_miss);
    tcase_add_test(tc, metrics_parse);
    tcase_add_test(tc, slow_client_cut_off);
    tcase_add_test(tc, overload_429);
    tcase_add_test(tc, deadline_504_and_disconnect);
    tcase_add_test(tc, api_key_401);
    tcase_add_test(tc, priority_overtakes);
    tcase_add_test(tc, drain);
    tcase_add_test(tc, image_routes);
    tcase_add_test(tc, zero_shot_route);
    tcase_add_test(tc, exit_timeout_503);
    tcase_add_test(tc, max_connections_503);
    suite_add_tcase(s, tc);
    int rc = test_run_suite(s);
    int a = stop_server(&main_srv), b = stop_server(&slow_srv);
    if (a || b) {
        printf("servers exited %d and %d, want 0\n", a, b);
        rc = 1;
    }
    return rc;
}
