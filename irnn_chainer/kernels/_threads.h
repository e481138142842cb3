/* Splitting a kernel's work over threads (included by the C kernels).
 *
 * irnn_parallel(n_threads, n_units, fn, arg) calls fn(arg, begin, end) on contiguous ranges
 * of [0, n_units) that cover it once, one range per thread (at most n_units threads; the
 * calling thread takes the first range), and returns when all are done. The kernels make
 * their results independent of the thread count by choosing work units whose results do not
 * depend on which thread computes them (blocks of batch rows) and by summing per-unit
 * partials in a fixed order afterwards.
 *
 * The other ranges run on a pool of worker threads that live as long as the process. After
 * a job a worker spins for up to 1 ms (irnn_spin_ns) before it sleeps on a condition
 * variable: on a 2-vCPU VM a call that had to wake the other vCPU (or start a thread, as
 * every call did before) paid ~86 us for it, twice per training update, and the next call
 * of a training update comes within a millisecond. The spin is that core's time, which the
 * kernel's threads own anyway; with one thread (--threads 1) there is no pool. A call made
 * while another is using the pool (Python threads calling kernels at once: the GIL is
 * released in them) starts threads of its own, as every call did before. After fork() the child's pool is empty (its
 * threads did not survive), and the child starts a new one.
 *
 * x86 keeps flush-to-zero / denormals-are-zero per thread (MXCSR): each range carries the
 * caller's mode, so every thread rounds alike. If a thread cannot be started its range runs
 * on the caller: the result is the same, only slower.
 */
#ifndef IRNN_THREADS_H
#define IRNN_THREADS_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#ifndef IRNN_MAX_THREADS
#define IRNN_MAX_THREADS 256
#endif

typedef void (*irnn_task_fn)(void *arg, Py_ssize_t begin, Py_ssize_t end);

typedef struct {
    irnn_task_fn fn;
    void *arg;
    Py_ssize_t begin, end;
#ifdef IRNN_HAVE_MXCSR
    unsigned int csr;
#endif
} irnn_range_task;

static void irnn_run_range(const irnn_range_task *task) {
#ifdef IRNN_HAVE_MXCSR
    _mm_setcsr(task->csr);
#endif
    task->fn(task->arg, task->begin, task->end);
}

static void *irnn_range_worker(void *p) {
    irnn_run_range((irnn_range_task *)p);
    return NULL;
}

/* ---- the pool: worker i (1 .. n_workers) runs tasks[i] of each job */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    int n_workers;              /* started so far */
    int n_job;                  /* workers the current job uses */
    int pending;                /* of those, not finished yet */
    unsigned long job;          /* incremented per job */
    int busy;                   /* a call is using the pool */
    irnn_range_task tasks[IRNN_MAX_THREADS];
    unsigned long seen[IRNN_MAX_THREADS]; /* per worker: the last job it looked at */
} irnn_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
               0, 0, 0, 0, 0};

static long irnn_spin_ns = 1000000;

static void *irnn_pool_worker(void *p) {
    const int me = (int)(intptr_t)p;
    pthread_mutex_lock(&irnn_pool.mu);
    for (;;) {
        if (irnn_pool.job == irnn_pool.seen[me] && irnn_spin_ns > 0) {
            /* spin a while before sleeping: waking a sleeping vCPU cost more than a job */
            pthread_mutex_unlock(&irnn_pool.mu);
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (long i = 1;; i++) {
                if (__atomic_load_n(&irnn_pool.job, __ATOMIC_ACQUIRE) != irnn_pool.seen[me]) break;
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
                if ((i & 255) == 0) {
                    clock_gettime(CLOCK_MONOTONIC, &t1);
                    if ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) > irnn_spin_ns)
                        break;
                }
            }
            pthread_mutex_lock(&irnn_pool.mu);
        }
        /* seen[me] starts at the job before the one the worker was started for */
        while (irnn_pool.job == irnn_pool.seen[me]) pthread_cond_wait(&irnn_pool.work, &irnn_pool.mu);
        irnn_pool.seen[me] = irnn_pool.job;
        if (me >= irnn_pool.n_job) continue; /* a job for fewer threads */
        irnn_range_task task = irnn_pool.tasks[me];
        pthread_mutex_unlock(&irnn_pool.mu);
        irnn_run_range(&task);
        pthread_mutex_lock(&irnn_pool.mu);
        if (--irnn_pool.pending == 0) pthread_cond_signal(&irnn_pool.done);
    }
    return NULL;
}

/* fork(): the child keeps the memory but none of the threads */
static void irnn_pool_after_fork_child(void) {
    pthread_mutex_init(&irnn_pool.mu, NULL);
    pthread_cond_init(&irnn_pool.work, NULL);
    pthread_cond_init(&irnn_pool.done, NULL);
    irnn_pool.n_workers = irnn_pool.n_job = irnn_pool.pending = irnn_pool.busy = 0;
}

/* Runs tasks[1 .. n) on the pool and tasks[0] here; 0, or -1 when the pool is in use or
 * could not start its threads (nothing has run then). */
static int irnn_pool_run(int n, const irnn_range_task *tasks) {
    static int atfork_ok = 0;
    pthread_mutex_lock(&irnn_pool.mu);
    if (irnn_pool.busy) {
        pthread_mutex_unlock(&irnn_pool.mu);
        return -1;
    }
    if (irnn_pool.n_workers == 0 && !atfork_ok) /* once per process, before any worker */
        atfork_ok = pthread_atfork(NULL, NULL, irnn_pool_after_fork_child) == 0;
    if (!atfork_ok) {
        pthread_mutex_unlock(&irnn_pool.mu);
        return -1;
    }
    while (irnn_pool.n_workers < n - 1) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        irnn_pool.seen[irnn_pool.n_workers + 1] = irnn_pool.job;
        const int rc = pthread_create(&tid, &attr, irnn_pool_worker,
                                      (void *)(intptr_t)(irnn_pool.n_workers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        irnn_pool.n_workers++;
    }
    if (irnn_pool.n_workers < n - 1) {
        pthread_mutex_unlock(&irnn_pool.mu);
        return -1;
    }
    irnn_pool.busy = 1;
    for (int i = 1; i < n; i++) irnn_pool.tasks[i] = tasks[i];
    irnn_pool.n_job = n;
    irnn_pool.pending = n - 1;
    __atomic_store_n(&irnn_pool.job, irnn_pool.job + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&irnn_pool.work);
    pthread_mutex_unlock(&irnn_pool.mu);
    irnn_run_range(&tasks[0]);
    pthread_mutex_lock(&irnn_pool.mu);
    while (irnn_pool.pending > 0) pthread_cond_wait(&irnn_pool.done, &irnn_pool.mu);
    irnn_pool.busy = 0;
    pthread_mutex_unlock(&irnn_pool.mu);
    return 0;
}

static void irnn_parallel(int n_threads, Py_ssize_t n_units, irnn_task_fn fn, void *arg) {
    if (n_units <= 0) return;
    if (n_threads > n_units) n_threads = (int)n_units;
    if (n_threads > IRNN_MAX_THREADS) n_threads = IRNN_MAX_THREADS;
    if (n_threads <= 1) {
        fn(arg, 0, n_units);
        return;
    }
    irnn_range_task tasks[IRNN_MAX_THREADS];
    for (int i = 0; i < n_threads; i++) {
        tasks[i].fn = fn;
        tasks[i].arg = arg;
        tasks[i].begin = n_units * i / n_threads;
        tasks[i].end = n_units * (i + 1) / n_threads;
#ifdef IRNN_HAVE_MXCSR
        tasks[i].csr = _mm_getcsr();
#endif
    }
    if (irnn_pool_run(n_threads, tasks) == 0) return;
    /* the pool is in use: threads of this call's own */
    pthread_t tids[IRNN_MAX_THREADS];
    int started[IRNN_MAX_THREADS];
    for (int i = 1; i < n_threads; i++)
        started[i] = pthread_create(&tids[i], NULL, irnn_range_worker, &tasks[i]) == 0;
    irnn_run_range(&tasks[0]);
    for (int i = 1; i < n_threads; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            irnn_run_range(&tasks[i]);
    }
}

#endif
