/* engine.h: the one public header of libengine, a pure-C inference engine for
 * BERT-family text models and ResNet image classifiers, converted by
 * tools/convert.
 *
 * Usage:
 *
 *     eng_model *model;
 *     if (eng_model_load("sst2.eng", NULL, &model) != ENG_OK) {
 *         fprintf(stderr, "%s\n", eng_last_error());
 *         return 1;
 *     }
 *     eng_ctx *ctx;
 *     eng_ctx_init(model, NULL, &ctx);
 *     const char *texts[2] = {"a charming journey", "bleak and desperate"};
 *     float logits[2 * 2];   // n_texts x n_labels
 *     int labels[2];
 *     eng_status item[2];
 *     eng_classify(ctx, texts, 2, logits, NULL, labels, item);
 *     printf("%s\n", eng_model_label(model, labels[0]));
 *     eng_ctx_free(ctx);
 *     eng_model_free(model);
 *
 * Thread-safety rule: an eng_model is immutable once loaded and may be shared by
 * any number of threads; an eng_ctx (scratch memory sized once, and the threads
 * that split one forward pass) belongs to one thread at a time. Use one context
 * per worker thread. eng_last_error() is per thread. The scheduler (eng_sched_*)
 * is safe to call from any thread. The library writes the environment once, and
 * only while the process loads it (a constructor, before main() for a program
 * linked with it): on AVX-512 CPUs it sets OPENBLAS_CORETYPE=SkylakeX for the
 * OpenBLAS it may load later (src/core/blas.c says why). A program that dlopen()s
 * libengine.so while other threads read the environment sets
 * ENG_BLAS_KEEP_CORETYPE=1 (or its own OPENBLAS_CORETYPE) first; nothing else in
 * the library touches the environment.
 *
 * Errors are values: every fallible call returns an eng_status; the detail is in
 * eng_last_error() (calls without an object) or eng_ctx_last_error(). The library
 * never exits or aborts on bad input.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Export and version ------------------------------------------------- */

/* ENG_API marks the public functions. build/libengine.so is compiled with
 * -fvisibility=hidden, so it exports these and nothing else (the internal
 * eng__* names stay inside; tests/test_exports.sh checks). */
#ifndef ENG_API   /* predefined empty where a part of the library is embedded
                     privately: the CUDA backend's copy of the error helpers */
#if defined(__GNUC__) || defined(__clang__)
#define ENG_API __attribute__((visibility("default")))
#else
#define ENG_API
#endif
#endif

/* The version of this header; eng_version() gives the library's, which differs
 * when a program runs against another build of libengine.so than it was
 * compiled with. MAJOR rises with an incompatible API change. */
#define ENG_VERSION_MAJOR 0
#define ENG_VERSION_MINOR 2
#define ENG_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library, e.g. "0.2.0". A static string. */
ENG_API const char *eng_version(void);

/* ---- Status codes ------------------------------------------------------ */

#define ENG_STATUS_LIST(X)                                                  \
    X(ENG_OK, "ok")                                                         \
    X(ENG_ERR_INVALID_ARG, "invalid argument")                              \
    X(ENG_ERR_IO, "i/o error")                                              \
    X(ENG_ERR_FORMAT, "malformed or corrupt data (model file or image)")    \
    X(ENG_ERR_UNSUPPORTED, "unsupported model or option")                   \
    X(ENG_ERR_NOMEM, "out of memory")                                       \
    X(ENG_ERR_UTF8, "invalid UTF-8 in input text")                          \
    X(ENG_ERR_TOO_LONG, "input too long")                                   \
    X(ENG_ERR_OVERLOADED, "queue full, request rejected")                   \
    X(ENG_ERR_TIMEOUT, "deadline passed before the request ran")            \
    X(ENG_ERR_SHUTDOWN, "scheduler is shutting down")                       \
    X(ENG_ERR_NO_DEVICE, "requested device is not available")               \
    X(ENG_ERR_INTERNAL, "internal error")                                   \
    X(ENG_ERR_NUMERIC, "result is not a finite number")

typedef enum {
#define ENG__X_ENUM(name, text) name,
    ENG_STATUS_LIST(ENG__X_ENUM)
#undef ENG__X_ENUM
    ENG__STATUS_COUNT   /* internal: the number of codes, not a status */
} eng_status;

/* A static, human-readable description of a status code. */
ENG_API const char *eng_status_str(eng_status s);

/* The detail message of the last failed call made by this thread that had no
 * object to hold it (eng_model_load, eng_ctx_init, ...). Never NULL. */
ENG_API const char *eng_last_error(void);

/* Formats a message for this thread's eng_last_error() and returns s: for the
 * layers built on this API (the scheduler, servers) to report their own
 * failures the way the library does. */
ENG_API eng_status eng_last_error_set(eng_status s, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The instruction set the kernels run with: "scalar", "avx2", "avx512", or
 * "amx" (AVX-512, with the int8 and bf16 GEMMs on Intel's AMX tiles). Chosen once,
 * when the library loads, from CPUID/XGETBV and, for AMX, Linux's
 * per-process permission; the environment variable ENG_ISA
 * (scalar|avx2|avx512|amx) can lower it, and ENG_AMX_DENY=1 makes the
 * permission request fail as on a kernel that refuses it. */
ENG_API const char *eng_isa_name(void);


/* ---- Model -------------------------------------------------------------- */

typedef struct eng_model eng_model;

/* The GEMM of the fp32 linear layers on the CPU. The built-in one (packed
 * weights straight from the file, bias/residual/activation fused) is the
 * default; OpenBLAS (loaded at run time, its AVX-512 kernels selected on CPUs
 * its own detection misses) is the alternative, at the cost of an unpacked copy
 * of the weights. AUTO reads the environment variable ENG_GEMM
 * (builtin|openblas) and defaults to the built-in one. */
typedef enum { ENG_GEMM_AUTO = 0, ENG_GEMM_BUILTIN = 1, ENG_GEMM_OPENBLAS = 2 } eng_gemm;

typedef struct {
    int n_threads;   /* default thread count of this model's contexts; 0 = all
                        online cores */
    eng_gemm gemm;   /* see eng_gemm */
} eng_model_params;

ENG_API eng_model_params eng_model_default_params(void);

/* Memory-maps and validates a file written by tools/convert. params may be
 * NULL for the defaults. On failure *out is NULL and eng_last_error() says why. */
ENG_API eng_status eng_model_load(const char *path, const eng_model_params *params, eng_model **out);
ENG_API void eng_model_free(eng_model *model);   /* NULL is fine */

typedef enum { ENG_INPUT_TEXT = 0, ENG_INPUT_IMAGE = 1 } eng_input;

typedef struct {
    const char *arch;        /* "bert", "distilbert", "resnet18", "resnet50", ... */
    eng_input input;         /* what the model takes: texts or images */
    const char *weights;     /* "fp32", or "int8" (encoder linear layers) */
    int n_labels;            /* 0 when the model has no classifier head */
    int image_size;          /* image models: the side of the square input */
    /* Text models only (0 for image models): */
    int hidden;              /* hidden size */
    int layers;
    int heads;
    int intermediate;        /* feed-forward size */
    int max_positions;       /* longest token sequence, [CLS] and [SEP] included */
    int vocab_size;
    int embed_normalize;     /* embeddings are L2-normalised */
    int embed_size;          /* floats per eng_embed* output: the hidden size, or
                                CLIP's projection (its shared image-text space) */
} eng_model_info;

ENG_API void eng_model_get_info(const eng_model *model, eng_model_info *info);

/* The GEMM this model's fp32 layers run on, e.g. "builtin avx512 (6x64
 * tiles)" or "OpenBLAS 0.3.21 ... (SkylakeX)". */
ENG_API const char *eng_model_gemm_name(const eng_model *model);

/* The name of class i, or NULL when out of range. */
ENG_API const char *eng_model_label(const eng_model *model, int i);

/* ---- Tokenizer ------------------------------------------------------------ */

/* BERT WordPiece tokenization exactly as Hugging Face's, [CLS] ... [SEP]
 * included. texts longer than the model's position limit are truncated to it
 * (the last id stays [SEP]) and *truncated is set to 1 (it may be NULL).
 * ids must hold cap entries; cap >= max_positions always suffices.
 * Returns ENG_ERR_UTF8 for invalid UTF-8, ENG_ERR_INVALID_ARG for a NULL text. */
ENG_API eng_status eng_tokenize(const eng_model *model, const char *text, size_t len,
                        int32_t *ids, int cap, int *n_ids, int *truncated);

/* Where a token came from: the bytes text[start..stop) of the original text,
 * before lowercasing or accent stripping (a subword "##ing" covers "ing"; an
 * accented letter reduced to "e" covers all its bytes). The [CLS] and [SEP]
 * added around the text come from no bytes: start = stop = -1. */
typedef struct {
    int32_t start, stop;
} eng_token_span;

/* eng_tokenize, also writing each id's source span to spans[0..*n_ids)
 * (spans holds cap entries). eng_tokenize does not track spans at all. */
ENG_API eng_status eng_tokenize_spans(const eng_model *model, const char *text, size_t len,
                                      int32_t *ids, eng_token_span *spans, int cap, int *n_ids,
                                      int *truncated);

/* The vocabulary entry of token id ("[CLS]", "##ing", ...): *len bytes, not
 * NUL-terminated, valid while the model is; *special says whether it is one
 * of the special tokens. NULL (and *len 0) when id is out of range or the
 * model has no tokenizer. len and special may be NULL. */
ENG_API const char *eng_model_token(const eng_model *model, int32_t id, size_t *len, int *special);

/* ---- Context and forward pass ------------------------------------------- */

typedef struct eng_ctx eng_ctx;

/* Where a context computes. A CUDA context runs the whole text forward pass on
 * one GPU (src/cuda/). Its backend, libengine-cuda.so, is loaded when the
 * first CUDA context is asked for: from $ENG_CUDA_BACKEND, else beside the
 * program (or libengine.so), else from the dynamic linker's path. Without it
 * or without a usable GPU, eng_ctx_init fails with ENG_ERR_NO_DEVICE and says
 * why; nothing else depends on CUDA being installed. */
typedef enum { ENG_DEVICE_CPU = 0, ENG_DEVICE_CUDA = 1 } eng_device;

/* GEMM precision of a context; everything else (layer norms, softmax,
 * activations, the residual stream) is fp32. FP32 is exact fp32 GEMM, TF32
 * uses tensor cores with 10-bit mantissa products, FP16 and BF16 store the
 * weights (converted once at upload) and the GEMM operands in 16 bits, and
 * accumulate in fp32. The CPU runs FP32, and BF16 for text models where it
 * has AMX-BF16 or AVX512-BF16 (else eng_ctx_init fails with
 * ENG_ERR_UNSUPPORTED): the fp32 weights are rounded to bf16 once per model,
 * at its first bf16 context (kept, shared, until eng_model_free), or stored
 * so by `convert --dtype bf16`; the activations are rounded at each GEMM's
 * input, and the attention's scores are bf16 products; int8 layers stay
 * int8. */
typedef enum {
    ENG_PREC_FP32 = 0,
    ENG_PREC_TF32 = 1,
    ENG_PREC_FP16 = 2,
    ENG_PREC_BF16 = 3
} eng_precision;

/* The CUDA devices this process can use, e.g. "CUDA runtime 13.0, driver 13.0:
 * 0: NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)", or why there are none ("CUDA
 * backend not loaded (...)", "no usable device: ..."). Loads the backend (see
 * eng_device). A static string; never NULL. */
ENG_API const char *eng_cuda_info(void);

typedef struct {
    int max_batch_tokens;   /* scratch is sized for this many tokens; larger
                               batches are split internally. 0 = 4096, or the
                               model's position limit when that is larger */
    int n_threads;          /* threads this context computes with: the caller
                               and n_threads - 1 it starts (they inherit the
                               caller's CPU binding). 0 = the model's n_threads */
    int max_batch_images;   /* image models: images per internal pass; 0 = 32 */
    eng_device device;      /* ENG_DEVICE_CPU (0) or ENG_DEVICE_CUDA; image
                               models run on the CPU only */
    int device_index;       /* CUDA device ordinal */
    eng_precision precision;   /* CPU: ENG_PREC_FP32 or ENG_PREC_BF16 */
} eng_ctx_params;

ENG_API eng_ctx_params eng_ctx_default_params(void);

ENG_API eng_status eng_ctx_init(const eng_model *model, const eng_ctx_params *params, eng_ctx **out);
ENG_API void eng_ctx_free(eng_ctx *ctx);   /* NULL is fine */
ENG_API const char *eng_ctx_last_error(const eng_ctx *ctx);

/* One tokenized sequence: ids[0] is [CLS], ids[n_ids-1] is [SEP]. */
typedef struct {
    const int32_t *ids;
    int n_ids;
} eng_seq;

/* Classify n sequences. logits: n x n_labels. probs (softmax of logits),
 * labels (argmax) and item_status may each be NULL. An item that fails (an id
 * out of range, too long, an output that is not finite: ENG_ERR_NUMERIC) fails
 * alone: its item_status says why and its outputs are zero. Returns ENG_OK when every item succeeded, else the status
 * of the first failed item. The result of a sequence never depends on the
 * other sequences of the batch. */
ENG_API eng_status eng_classify_ids(eng_ctx *ctx, const eng_seq *seqs, int n, float *logits,
                            float *probs, int *labels, eng_status *item_status);

/* The pooled last hidden state (mean over tokens, or [CLS], and L2-normalised
 * when the model's sentence-transformers config says so): out is n x hidden. */
ENG_API eng_status eng_embed_ids(eng_ctx *ctx, const eng_seq *seqs, int n, float *out,
                         eng_status *item_status);

/* The same from UTF-8 texts (tokenized, then truncated to the position limit).
 * A text with invalid UTF-8 fails alone with ENG_ERR_UTF8. */
ENG_API eng_status eng_classify(eng_ctx *ctx, const char *const *texts, int n, float *logits,
                        float *probs, int *labels, eng_status *item_status);
ENG_API eng_status eng_embed(eng_ctx *ctx, const char *const *texts, int n, float *out,
                     eng_status *item_status);

/* Image models: classify n JPEG or PNG images, given as file paths or as
 * encoded bytes in memory (data[i], size[i]). Each is decoded, turned into
 * RGB, resized and centre-cropped as the model's recipe says (torchvision's
 * ImageNet recipe for ResNets, matching PIL). A corrupt, truncated, empty or
 * huge image fails alone (ENG_ERR_FORMAT, ENG_ERR_TOO_LONG, ENG_ERR_IO) and the
 * rest of the batch goes on. Outputs as for eng_classify_ids. */
ENG_API eng_status eng_classify_images(eng_ctx *ctx, const char *const *paths, int n, float *logits,
                               float *probs, int *labels, eng_status *item_status);
ENG_API eng_status eng_classify_image_data(eng_ctx *ctx, const void *const *data, const size_t *size,
                                   int n, float *logits, float *probs, int *labels,
                                   eng_status *item_status);
/* Vision transformers (ViT, CLIP): n images to embeddings, out n x
 * embed_size (eng_model_info): a ViTModel's pooler output (or the final
 * layernorm's class token), CLIP's image features (visual projection of the
 * post-layernormed class token, not normalised, as HF's get_image_features).
 * Images fail alone as for eng_classify_images. For CLIP, eng_embed_ids gives
 * the text features of token ids in the same space (HF's get_text_features),
 * and eng_embed those of texts when the folder had a tokenizer.json. */
ENG_API eng_status eng_embed_images(eng_ctx *ctx, const char *const *paths, int n, float *out,
                                    eng_status *item_status);
ENG_API eng_status eng_embed_image_data(eng_ctx *ctx, const void *const *data, const size_t *size,
                                        int n, float *out, eng_status *item_status);
/* Zero-shot image classification with a CLIP model: per image, the
 * probabilities of n_labels labels, softmax over labels of exp(logit_scale)
 * x the cosine between the image's features and each label's prompt
 * features (HF's CLIPModel logits_per_image). A label's prompt is templ with
 * "{}" replaced by the label ("a photo of a {}" when templ is NULL),
 * tokenized by the model; or, when ids is given, ids[i] is label i's prompt
 * already tokenized (then the texts only name the cache entry). The label
 * embeddings are computed once per label set and kept in the model, shared
 * by all its contexts and threads (at most 64 sets, least recently used out),
 * keyed by the exact template, labels and ids (and the context's precision:
 * fp32 and bf16 contexts keep their own). */
typedef struct {
    const char *const *labels;
    int n_labels;
    const char *templ;
    const eng_seq *ids;     /* NULL: tokenize the prompts */
} eng_label_set;

/* probs: n x n_labels; top (argmax, -1 for a failed item) and item_status may
 * be NULL. Images fail alone as for eng_classify_images (their probs are
 * zeros). With n = 0 it only makes sure the label set is cached (warming it;
 * an error then is the labels'). ENG_ERR_UNSUPPORTED for a model other than
 * CLIP. */
ENG_API eng_status eng_zero_shot_images(eng_ctx *ctx, const eng_label_set *labels,
                                        const char *const *paths, int n, float *probs, int *top,
                                        eng_status *item_status);
ENG_API eng_status eng_zero_shot_image_data(eng_ctx *ctx, const eng_label_set *labels,
                                            const void *const *data, const size_t *size, int n,
                                            float *probs, int *top, eng_status *item_status);

/* The same from image features already computed (n x embed_size, as
 * eng_embed_image_data or the scheduler's ENG_TASK_EMBED give them): for a
 * server that embeds images through the scheduler and scores them against a
 * label set on a context of its own (which computes a missing label set). */
ENG_API eng_status eng_zero_shot_scores(eng_ctx *ctx, const eng_label_set *labels,
                                        const float *features, int n, float *probs, int *top);

typedef struct {
    uint64_t hits, misses;   /* label-set lookups */
    uint64_t entries;        /* label sets cached now */
} eng_zero_shot_stats;

/* The model's label-set cache counters (zeros for a model other than CLIP). */
ENG_API void eng_zero_shot_get_stats(const eng_model *model, eng_zero_shot_stats *out);

/* Why item i of the last eng_classify_images / eng_classify_image_data call
 * failed ("cannot open x.jpg: No such file or directory", ...), or NULL when
 * it did not fail or its reason is not kept: a call of more than the context's
 * max_batch_images images runs in passes and keeps the reasons of its last
 * pass only (size the context for the batch to keep them all). Text calls'
 * item statuses say it all, so they keep none. Valid until the next call. */
ENG_API const char *eng_ctx_item_error(const eng_ctx *ctx, int i);

/* ---- Scheduler ------------------------------------------------------------ */

/* A NUMA-aware dynamic batching scheduler (src/serve/scheduler.c). Any thread submits
 * a text (tokenized in the submitting thread), token ids, or, to an image
 * model, an encoded image (eng_sched_submit_image); worker threads,
 * each with its own eng_ctx and bound to a CPU set, run them in batches. The
 * result arrives through a completion callback (run on a worker thread, or on
 * the timer thread for a timeout) or through a ticket the caller waits on.
 *
 * Batch formation: a worker takes queued requests in priority order (FIFO
 * within a level) until max_batch_size requests or until the next one would
 * exceed max_batch_tokens; it stops at the first request that does not fit, so
 * no request is overtaken within its level. It does not group by length: the
 * forward pass packs sequences without padding, so a batch costs ~ its total
 * tokens plus the sum of len^2, which the token budget bounds either way.
 * Image models batch up to max_batch_size images; the token budget does not
 * apply to them (an image counts as one token).
 * With max_wait_us > 0 a worker waits for company until the oldest queued
 * request is max_wait_us old (or a batch is full); with 0 it takes whatever is
 * queued as soon as it is free.
 *
 * Every accepted request completes exactly once: with the model's result, the
 * item's own error (one failing item fails alone), or ENG_ERR_TIMEOUT when it
 * is still queued at its deadline (a timer thread enforces this even while all
 * workers are busy). A submit that is refused (full queue, shutdown, bad
 * input) returns the error and never calls back.
 *
 * Measuring and testing aids, not for serving: the null model (params.model ==
 * NULL) lets benchmarks measure the scheduler's own overhead and tests drive it
 * without a model file, and params.topology plans on a made-up machine. The
 * null model's behaviour is fixed so that tests can check results: a text
 * becomes [CLS]=101, one id 1000 + min(bytes, 999) per word separated by ASCII
 * white space, [SEP]=102, truncated to ENG__SCHED_NULL_POSITIONS ids. Ids
 * outside [0, ENG__SCHED_NULL_VOCAB) fail that item with ENG_ERR_INVALID_ARG.
 * Classify returns 2 logits {n_ids, sum(ids) % 4096}; embed returns 4 floats
 * {n_ids, sum(ids) % 4096, ids[0], ids[n_ids-1]}. A batch takes
 * null_batch_us + null_token_ns x tokens (sleeping), 0 by default.
 *
 * Placement (hwloc): by default one worker per NUMA node that has usable cores,
 * each bound to that node's cores (the PUs of whole cores) with its scratch
 * memory (eng_ctx, output buffers) allocated by the bound thread under a
 * node-local memory policy. workers x threads_per_worker may not exceed the
 * usable cores. Each worker's context computes with threads_per_worker
 * threads: the worker thread and the ones its context starts, which inherit
 * its binding; BLAS runs one thread per call inside them, so every thread that
 * computes is bound. Binding that the system refuses (containers) is skipped
 * and reported by eng_sched_warning(). */

#define ENG_SCHED_PRIORITIES 4        /* priority levels; 0 is the most urgent */
#define ENG_SCHED_MAX_BATCH 256       /* the largest max_batch_size */
#define ENG_SCHED_MAX_POSITIONS 2048  /* models with longer position limits are refused */
/* The null model's limits (internal: testing aids, see above). */
#define ENG__SCHED_NULL_POSITIONS 128
#define ENG__SCHED_NULL_VOCAB 30522

typedef struct eng_sched eng_sched;
typedef struct eng_sched_ticket eng_sched_ticket;

typedef enum { ENG_TASK_CLASSIFY = 0, ENG_TASK_EMBED = 1 } eng_task;

typedef struct {
    const eng_model *model;   /* shared by the workers; NULL = the null model */
    int n_workers;            /* 0 = one per NUMA node with usable cores
                                 (cores / threads_per_worker when that is set) */
    int threads_per_worker;   /* 0 = the usable cores shared out evenly */
    const char *cpus;         /* usable CPUs, OS indices "0-7,16-23"; NULL = all
                                 the process may run on */
    int bind;                 /* bind worker threads and their memory (default 1) */
    const char *topology;     /* testing aid: plan on this hwloc synthetic
                                 topology instead of the machine, e.g.
                                 "pack:2 numa:2 core:8 pu:1"; binding is then
                                 skipped. NULL (the default) for real use */
    int max_batch_size;       /* 1..ENG_SCHED_MAX_BATCH, default 32 */
    int max_batch_tokens;     /* token budget of a batch, >= the model's position
                                 limit; 0 = 16 x max_positions */
    int64_t max_wait_us;      /* see above; default 0 (work-conserving) */
    int queue_capacity;       /* queued requests at most; default 4096 */
    int idle_spin_us;         /* an idle worker polls for work this long before
                                 it sleeps; default 20. A sleeping worker takes
                                 tens of microseconds to wake (more in a virtual
                                 machine), so a light load's latency gains from
                                 polling for about the gaps between requests;
                                 the cost is a core kept busy while idle */
    int null_batch_us;        /* null model: sleep per batch */
    int null_token_ns;        /* null model: sleep per token of the batch */
    eng_ctx_params ctx;       /* each worker's context: device, device_index,
                                 precision (default eng_ctx_default_params());
                                 the scheduler sets its max_batch_tokens,
                                 max_batch_images and n_threads itself */
} eng_sched_params;

typedef struct {
    eng_status status;        /* ENG_OK, the item's error, or ENG_ERR_TIMEOUT */
    eng_task task;
    void *user;               /* from the request */
    const float *out;         /* classify: n_out logits; embed: the embedding */
    const float *probs;       /* classify: softmax of the logits; else NULL */
    int n_out;
    int label;                /* classify: argmax of the logits; else -1 */
    int n_tokens;             /* an image counts as 1 */
    int batch_size;           /* requests in its batch; 0 when it never ran */
    int batch_tokens;         /* tokens of its batch (an image counts as 1);
                                 0 when it never ran */
    int worker;               /* the worker that ran it; -1 when it never ran */
    int64_t queue_ns;         /* submit to batch start (or to the timeout) */
    int64_t compute_ns;       /* the batch's forward pass */
} eng_sched_result;

/* Runs on a worker (or the timer) thread; the pointers in res are valid only
 * during the call. It must not block for long and must not call
 * eng_sched_shutdown() or eng_sched_free(); it may submit. */
typedef void (*eng_sched_done_fn)(const eng_sched_result *res);

typedef struct {
    eng_task task;            /* default ENG_TASK_CLASSIFY */
    int priority;             /* 0..ENG_SCHED_PRIORITIES-1, default 0 */
    int64_t timeout_us;       /* deadline relative to the submit; 0 = none */
    eng_sched_done_fn done;   /* NULL: the submit returns a ticket to wait on */
    void *user;
} eng_sched_req;

typedef struct {
    uint64_t submitted;       /* every submit call */
    uint64_t completed;       /* ran, ENG_OK */
    uint64_t rejected;        /* refused at submit: overloaded, shutdown, bad input */
    uint64_t timed_out;
    uint64_t failed;          /* ran, item error */
    uint64_t queued;          /* now */
    uint64_t batches;
    double mean_batch;
    uint64_t batch_hist[ENG_SCHED_MAX_BATCH + 1];   /* [k]: batches of k requests */
    struct { double p50, p95, p99, max; } queue_us;   /* per request that ran */
    struct { double p50, p95, p99, max; } compute_us; /* per batch */
} eng_sched_stats;

typedef struct {
    char cpus[128];           /* its CPU set as an OS-index list */
    int numa_node;            /* OS index of its node, -1 when unknown */
    int n_threads;            /* cores it owns */
    int cpu_bound, mem_bound; /* whether binding took effect */
} eng_sched_worker_info;

ENG_API eng_sched_params eng_sched_default_params(void);
ENG_API eng_sched_req eng_sched_default_req(void);

/* Plans the placement, starts the workers (each creates its eng_ctx) and the
 * timer thread. On failure *out is NULL and eng_last_error() says why. */
ENG_API eng_status eng_sched_create(const eng_sched_params *params, eng_sched **out);

/* Queue a text or token ids (ids[0] = [CLS], ids[n_ids-1] = [SEP], copied).
 * With req->done NULL, *ticket receives a handle for eng_sched_wait(); else
 * ticket may be NULL. Fails at once with ENG_ERR_OVERLOADED (queue full),
 * ENG_ERR_SHUTDOWN, ENG_ERR_UTF8, ENG_ERR_TOO_LONG or ENG_ERR_INVALID_ARG;
 * eng_last_error() says why. A NULL req means eng_sched_default_req(). */
ENG_API eng_status eng_sched_submit(eng_sched *s, const char *text, size_t len,
                            const eng_sched_req *req, eng_sched_ticket **ticket);
ENG_API eng_status eng_sched_submit_ids(eng_sched *s, const int32_t *ids, int n_ids,
                                const eng_sched_req *req, eng_sched_ticket **ticket);

/* Queue one encoded JPEG or PNG image (size bytes at data) for an image
 * model; req->task ENG_TASK_EMBED is for the models that embed images (ViT,
 * CLIP: eng_embed_image_data), ENG_TASK_CLASSIFY for those with a
 * classifier. The bytes are NOT copied: the
 * caller keeps them valid and unchanged until the request completes (its
 * callback has returned, or eng_sched_wait has returned). An image that does
 * not decode fails alone with its own status (ENG_ERR_FORMAT, ...). Text and
 * id submits to an image model, and image submits to a text (or the null)
 * model, fail at once with ENG_ERR_UNSUPPORTED. */
ENG_API eng_status eng_sched_submit_image(eng_sched *s, const void *data, size_t size,
                                  const eng_sched_req *req, eng_sched_ticket **ticket);

/* Blocks until the ticket's request completed and fills *res (pointers valid
 * until eng_sched_release). Returns res->status. A ticket is waited on by one
 * thread, and released exactly once. Tickets hold pool slots until released. */
ENG_API eng_status eng_sched_wait(eng_sched *s, eng_sched_ticket *ticket, eng_sched_result *res);
ENG_API void eng_sched_release(eng_sched *s, eng_sched_ticket *ticket);

/* Stop accepting (ENG_ERR_SHUTDOWN), finish every accepted request, join the
 * threads. Idempotent; tickets stay valid until eng_sched_free. */
ENG_API void eng_sched_shutdown(eng_sched *s);
ENG_API void eng_sched_free(eng_sched *s);   /* shuts down first; NULL is fine */

ENG_API void eng_sched_get_stats(eng_sched *s, eng_sched_stats *out);
ENG_API int eng_sched_n_workers(const eng_sched *s);
ENG_API eng_status eng_sched_get_worker(const eng_sched *s, int i, eng_sched_worker_info *out);
/* Why binding was skipped (first occurrence), or "" when nothing was. */
ENG_API const char *eng_sched_warning(const eng_sched *s);

/* ---- Result cache ----------------------------------------------------------- */

/* An LRU cache of results (src/serve/cache.c) for servers that see the same
 * inputs again (repeated texts, class-name embeddings). An entry is keyed by
 * the model's name, the task, an options word the caller defines (e.g.
 * normalize/truncate flags) and the exact input bytes: a hit compares the
 * stored bytes, not just their hash, so it returns exactly what was stored.
 * Bounded by max_entries and by max_bytes (keys and values together); the
 * least recently used entries go first. Safe to call from any thread. */
typedef struct eng_cache eng_cache;

typedef struct {
    size_t max_entries;   /* 0 = the cache is off: every get misses, put stores nothing */
    size_t max_bytes;     /* memory bound of keys + values; default 64 MiB */
} eng_cache_params;

typedef struct {
    const char *model;    /* the model's name */
    eng_task task;
    uint32_t options;     /* caller-defined flags that change the result */
    const void *input;    /* the exact input bytes (text or encoded image) */
    size_t input_len;
} eng_cache_key;

typedef struct {
    const float *vals;    /* what the caller stores, e.g. logits then probs */
    int n_vals;
    int label;
    int n_tokens;
} eng_cache_value;

typedef struct {
    uint64_t hits, misses, insertions, evictions;
    uint64_t entries, bytes;   /* now */
} eng_cache_stats;

ENG_API eng_cache_params eng_cache_default_params(void);
/* On failure *out is NULL and eng_last_error() says why. */
ENG_API eng_status eng_cache_create(const eng_cache_params *params, eng_cache **out);
ENG_API void eng_cache_free(eng_cache *cache);   /* NULL is fine */
/* On a hit, copies the value's floats to vals (cap of them at most; *value
 * gets n_vals, label, n_tokens and vals = the caller's array) and returns 1;
 * else 0. A NULL cache always misses. */
ENG_API int eng_cache_get(eng_cache *cache, const eng_cache_key *key, float *vals, int cap,
                          eng_cache_value *value);
/* Stores (or replaces) an entry; ENG_ERR_TOO_LONG when one entry alone is
 * over max_bytes, ENG_ERR_NOMEM. A NULL or off cache stores nothing: ENG_OK. */
ENG_API eng_status eng_cache_put(eng_cache *cache, const eng_cache_key *key,
                                 const eng_cache_value *value);
ENG_API void eng_cache_get_stats(eng_cache *cache, eng_cache_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* ENGINE_H */
